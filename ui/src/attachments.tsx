// Attachments: sending files (picked, dropped or pasted) with a progress bar, and opening them in
// viewers that hold the decrypted bytes in memory only (images, PDF, ECG). "Save as…" is the one
// way a plaintext copy reaches the disk, and it asks first.
import { Suspense, lazy, useEffect, useRef, useState } from "react";
import { invoke } from "@tauri-apps/api/core";
import { commands, events, type EcgView, type IpcError, type MessageView } from "./bindings";
import { EcgPaper } from "./ecgPaper";
import { ErrorAlert } from "./errorAlert";

// pdf.js is large; it loads when the first PDF is opened, not at start-up.
const PdfPages = lazy(() => import("./pdfPages").then((module) => ({ default: module.PdfPages })));

let transfers = 0;

/** A fresh id to match progress events to the transfer that raised them. */
export function newTransfer(): string {
  transfers += 1;
  return `transfer-${Date.now()}-${transfers}`;
}

/** The percentage reported for `transfer`, or null before the first report. */
export function useProgress(transfer: string | null): number | null {
  const [percent, setPercent] = useState<number | null>(null);
  useEffect(() => {
    setPercent(null);
    if (!transfer) return;
    let stop: (() => void) | null = null;
    let live = true;
    void events.transferProgress
      .listen((event) => {
        if (event.payload.transfer === transfer) setPercent(event.payload.percent);
      })
      .then((unlisten) => {
        if (live) stop = unlisten;
        else unlisten();
      });
    return () => {
      live = false;
      stop?.();
    };
  }, [transfer]);
  return percent;
}

export function ProgressBar({ label, percent }: { label: string; percent: number | null }) {
  return (
    <div className="progress" data-testid="progress">
      <span>{label}</span>
      <progress max={100} value={percent ?? undefined} aria-label={label}>
        {percent ?? 0}%
      </progress>
      {percent !== null && <span className="detail">{percent}%</span>}
    </div>
  );
}

/** Sends one file's bytes to the conversation; the error, if any, in the clinician's words. */
export async function sendFile(chatId: string, file: File, transfer: string, limitMb: number | null): Promise<IpcError | null> {
  if (limitMb !== null && file.size > limitMb * 1_000_000) {
    return {
      code: "attachment_refused",
      message: `${file.name || "This file"} is ${(file.size / 1_000_000).toFixed(1)} MB; your organization allows attachments up to ${limitMb} MB.`,
    };
  }
  const bytes = new Uint8Array(await file.arrayBuffer());
  try {
    await invoke("send_attachment", bytes, {
      headers: {
        "x-ward-chat": encodeURIComponent(chatId),
        "x-ward-name": encodeURIComponent(file.name || pastedName(file.type)),
        "x-ward-transfer": encodeURIComponent(transfer),
      },
    });
    return null;
  } catch (error) {
    return asIpcError(error);
  }
}

function pastedName(type: string): string {
  const extension = type.split("/")[1]?.replace("jpeg", "jpg") ?? "bin";
  return `pasted-${new Date().toISOString().slice(0, 19).replace(/[:T]/g, "-")}.${extension}`;
}

function asIpcError(error: unknown): IpcError {
  if (error && typeof error === "object" && "message" in error && "code" in error) return error as IpcError;
  return { code: "action_failed", message: "The file could not be sent. Try again." };
}

type ViewerKind = "image" | "pdf" | "ecg" | null;

/** Which viewer opens a file, by its media type and name. */
export function viewerFor(mediaType: string | null | undefined, name: string): ViewerKind {
  const type = (mediaType ?? "").toLowerCase();
  if (["image/png", "image/jpeg", "image/gif", "image/webp"].includes(type)) return "image";
  if (type === "application/pdf") return "pdf";
  if (type === "application/dicom" || /\.dcm$/i.test(name)) return "ecg";
  // HL7 aECG files are XML; other XML is tried as an ECG too and refused clearly if it is not.
  if (type === "application/xml" || /\.xml$/i.test(name)) return "ecg";
  return null;
}

/**
 * A word, not an emoji, says what kind of file it is: ward PCs often have no emoji font, and a
 * screen reader reads the word.
 */
const FILE_KIND_LABELS: Record<NonNullable<ViewerKind> | "file", string> = {
  image: "Image",
  pdf: "PDF",
  ecg: "ECG",
  file: "File",
};

/** The attachment part of a message bubble: its name and size, Open and Save as…. */
export function AttachmentBody({ message, onOpen }: { message: MessageView; onOpen: () => void }) {
  const [confirming, setConfirming] = useState(false);
  const [saved, setSaved] = useState<string | null>(null);
  const [error, setError] = useState<IpcError | null>(null);
  const kind = viewerFor(message.mediaType, message.text);
  return (
    <div className="body attachment" data-testid="attachment">
      <p>
        <span className="file-kind">{FILE_KIND_LABELS[kind ?? "file"]}</span>{" "}
        <span data-testid="attachment-name">{message.text}</span>
        {message.size !== null && message.size !== undefined && <span className="detail"> ({formatSize(message.size)})</span>}
      </p>
      <div className="attachment-actions">
        {kind && (
          <button type="button" onClick={onOpen} data-testid="open-attachment">
            Open
          </button>
        )}
        <button type="button" onClick={() => setConfirming(true)} data-testid="save-attachment">
          Save as…
        </button>
      </div>
      {confirming && (
        <div className="confirm" role="alertdialog" aria-labelledby={`save-${message.clientId}`}>
          <p id={`save-${message.clientId}`}>
            <strong>Save an unencrypted copy?</strong> Anyone who can open files on this computer can read it. Save only
            where your hospital allows patient files.
          </p>
          <button
            type="button"
            className="primary"
            autoFocus
            onClick={async () => {
              setConfirming(false);
              const result = await commands.saveAttachment(message.clientId, message.text);
              if (result.status === "ok") {
                setError(null);
                setSaved(result.data ? "Saved." : null);
              } else setError(result.error);
            }}
          >
            Choose where to save…
          </button>
          <button type="button" onClick={() => setConfirming(false)}>
            Cancel
          </button>
        </div>
      )}
      {saved && <p className="detail">{saved}</p>}
      <ErrorAlert error={error} />
    </div>
  );
}

export function formatSize(bytes: number): string {
  if (bytes < 1000) return `${bytes} B`;
  if (bytes < 1_000_000) return `${(bytes / 1000).toFixed(0)} kB`;
  return `${(bytes / 1_000_000).toFixed(1)} MB`;
}

type Loaded = { kind: "image"; url: string } | { kind: "pdf"; bytes: Uint8Array } | { kind: "ecg"; recording: EcgView };

/** A modal viewer for one attachment. The decrypted bytes live in this component's memory and
 * are dropped when it closes. */
export function AttachmentViewer({ message, onClose }: { message: MessageView; onClose: () => void }) {
  const kind = viewerFor(message.mediaType, message.text);
  const [transfer] = useState(newTransfer);
  const percent = useProgress(transfer);
  const [loaded, setLoaded] = useState<Loaded | null>(null);
  const [error, setError] = useState<string | null>(null);
  const close = useRef<HTMLButtonElement>(null);

  useEffect(() => {
    close.current?.focus();
    let live = true;
    let url: string | null = null;
    async function load() {
      if (kind === "ecg") {
        const result = await commands.ecgRecording(message.clientId, transfer);
        if (!live) return;
        if (result.status === "ok") setLoaded({ kind: "ecg", recording: result.data });
        else setError(result.error.message);
        return;
      }
      try {
        const buffer = await invoke<ArrayBuffer>("open_attachment", { clientId: message.clientId, transfer });
        if (!live) return;
        if (kind === "image") {
          url = URL.createObjectURL(new Blob([buffer], { type: message.mediaType ?? "application/octet-stream" }));
          setLoaded({ kind: "image", url });
        } else setLoaded({ kind: "pdf", bytes: new Uint8Array(buffer) });
      } catch (failure) {
        if (live) setError(asIpcError(failure).message);
      }
    }
    void load();
    return () => {
      live = false;
      if (url) URL.revokeObjectURL(url);
    };
  }, [message.clientId, message.mediaType, kind, transfer]);

  return (
    <div
      className="viewer-backdrop"
      onKeyDown={(event) => {
        if (event.key === "Escape") onClose();
        if (event.key === "Tab") keepFocusInside(event.currentTarget, event);
      }}
    >
      <div className="viewer" role="dialog" aria-modal="true" aria-labelledby="viewer-title" data-testid="viewer">
        <header>
          <h2 id="viewer-title">{message.text}</h2>
          <button type="button" ref={close} onClick={onClose} data-testid="close-viewer">
            Close
          </button>
        </header>
        {error && (
          <p role="alert" className="error" data-testid="viewer-error">
            {error}
          </p>
        )}
        {!loaded && !error && <ProgressBar label="Downloading and decrypting…" percent={percent} />}
        {loaded?.kind === "image" && <img className="image-view" src={loaded.url} alt={message.text} data-testid="image-view" />}
        {loaded?.kind === "pdf" && (
          <Suspense fallback={<p className="detail">Opening the PDF…</p>}>
            <PdfPages bytes={loaded.bytes} />
          </Suspense>
        )}
        {loaded?.kind === "ecg" && <EcgPaper recording={loaded.recording} />}
      </div>
    </div>
  );
}

/** Tab and Shift+Tab cycle inside the dialog: the page behind it is out of reach while it is open. */
function keepFocusInside(container: HTMLElement, event: { shiftKey: boolean; preventDefault: () => void }) {
  const focusable = Array.from(
    container.querySelectorAll<HTMLElement>('button:not([disabled]), [tabindex="0"], a[href], input, textarea, select'),
  );
  const first = focusable[0];
  const last = focusable[focusable.length - 1];
  if (!first || !last) return;
  if (event.shiftKey && document.activeElement === first) {
    event.preventDefault();
    last.focus();
  } else if (!event.shiftKey && document.activeElement === last) {
    event.preventDefault();
    first.focus();
  }
}
