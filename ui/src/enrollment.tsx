// First run: the relay address (fixed when IT set it), the invite code, the clinician's name, and
// one plain sentence about what enrolling does.
import { useState, type FormEvent } from "react";
import { commands, type EnrollmentDefaults, type IpcError } from "./bindings";
import { ErrorAlert } from "./errorAlert";

export function Enrollment({ defaults }: { defaults: EnrollmentDefaults }) {
  const [relayUrl, setRelayUrl] = useState(defaults.relayUrl ?? "");
  const [invite, setInvite] = useState(defaults.invite ?? "");
  const [displayName, setDisplayName] = useState("");
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<IpcError | null>(null);

  async function submit(event: FormEvent) {
    event.preventDefault();
    setBusy(true);
    setError(null);
    // On success the status event switches the window to the messenger.
    const result = await commands.enroll(relayUrl, invite, displayName);
    setBusy(false);
    if (result.status === "error") setError(result.error);
  }

  return (
    <form className="enrollment" onSubmit={(event) => void submit(event)} data-testid="enrollment" aria-busy={busy}>
      <h1>Set up Ward on this computer</h1>
      <p className="lead">
        Ward makes your security keys on this computer and keeps them in its keychain, so only
        your devices can read your messages — not IT, and not the server.
      </p>
      <label htmlFor="relay-url">Hospital relay address</label>
      <input
        id="relay-url"
        name="relay-url"
        type="url"
        required
        value={relayUrl}
        readOnly={defaults.relayLocked}
        aria-describedby={defaults.relayLocked ? "relay-managed" : undefined}
        onChange={(event) => setRelayUrl(event.target.value)}
        placeholder="https://ward.hospital.example"
      />
      {defaults.relayLocked && (
        <p id="relay-managed" className="managed" data-testid="relay-managed">
          Managed by your organization
        </p>
      )}
      <label htmlFor="invite-code">Invite code from IT</label>
      <input
        id="invite-code"
        name="invite-code"
        required
        autoComplete="off"
        spellCheck={false}
        value={invite}
        onChange={(event) => setInvite(event.target.value)}
      />
      <label htmlFor="display-name">Your name</label>
      <input
        id="display-name"
        name="display-name"
        autoComplete="name"
        value={displayName}
        aria-describedby="display-name-detail"
        onChange={(event) => setDisplayName(event.target.value)}
        placeholder="As on your hospital badge"
      />
      <p id="display-name-detail" className="detail">
        Colleagues see the name and role IT entered on your invite; Ward tells you if it differs.
      </p>
      <ErrorAlert error={error} testId="enroll-error" />
      <button type="submit" className="primary" disabled={busy} data-testid="enroll-submit">
        {busy ? "Setting up…" : "Set up Ward"}
      </button>
    </form>
  );
}
