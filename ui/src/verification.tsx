// A contact's safety number (60 digits in 12 groups) and its QR code, and the button that marks
// them verified after the two clinicians compared numbers in person or by phone.
import { useEffect, useState } from "react";
import { commands, type IpcError, type VerificationView } from "./bindings";
import { ErrorAlert } from "./errorAlert";

export function QrCode({ width, dark, label }: { width: number; dark: boolean[]; label: string }) {
  const quiet = 4;
  const side = width + quiet * 2;
  const cells: string[] = [];
  dark.forEach((on, index) => {
    if (on) cells.push(`M${(index % width) + quiet} ${Math.floor(index / width) + quiet}h1v1h-1z`);
  });
  return (
    <svg className="qr" viewBox={`0 0 ${side} ${side}`} role="img" aria-label={label} data-testid="safety-qr">
      <rect width={side} height={side} fill="#fff" />
      <path d={cells.join("")} fill="#000" shapeRendering="crispEdges" />
    </svg>
  );
}

export function VerificationPanel({
  userId,
  onClose,
  onVerified,
}: {
  userId: string;
  onClose: () => void;
  onVerified: () => void;
}) {
  const [view, setView] = useState<VerificationView | null>(null);
  const [error, setError] = useState<IpcError | null>(null);

  useEffect(() => {
    let live = true;
    void commands.contactVerification(userId).then((result) => {
      if (!live) return;
      if (result.status === "ok") setView(result.data);
      else setError(result.error);
    });
    return () => {
      live = false;
    };
  }, [userId]);

  async function markVerified() {
    const result = await commands.markVerified(userId);
    if (result.status === "error") {
      setError(result.error);
      return;
    }
    setView((current) => (current ? { ...current, verified: true, keyChanged: false } : current));
    onVerified();
  }

  return (
    <section className="panel" aria-labelledby="verify-heading" data-testid="verification">
      <header className="panel-header">
        <h2 id="verify-heading">Safety number{view ? ` with ${view.name}` : ""}</h2>
        <button type="button" className="quiet" onClick={onClose} aria-label="Close safety number">
          Close
        </button>
      </header>
      <ErrorAlert error={error} />
      {view && (
        <>
          <p>
            Compare these numbers with {view.name}, in person or on a call you trust. If they match,
            nobody is listening in between you.
          </p>
          <p className="safety-number" data-testid="safety-number" aria-label={`Safety number ${view.groups.join(" ")}`}>
            {view.groups.map((group, index) => (
              <span key={index}>{group}</span>
            ))}
          </p>
          <QrCode width={view.qrWidth} dark={view.qrDark} label={`QR code of the safety number with ${view.name}`} />
          {view.verified ? (
            <p className="verified" data-testid="verified-state" data-verified="true">
              ✓ You have verified {view.name}.
            </p>
          ) : (
            <button type="button" className="primary" onClick={() => void markVerified()} data-testid="mark-verified">
              The numbers match — mark {view.name} verified
            </button>
          )}
        </>
      )}
    </section>
  );
}
