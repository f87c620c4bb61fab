import type { AppStatus, ErrorCode, IpcError, SettingView, StoreStatus } from "./bindings";
import { commands } from "./bindings";
import { Enrollment } from "./enrollment";
import { IdleLock } from "./idleLock";
import { Messenger } from "./messenger";
import { useAppStatus } from "./status";

export function App() {
  const view = useAppStatus();
  switch (view.kind) {
    case "loading":
      return <Opening />;
    case "ipcFailed":
      return <FailureScreen error={view.error} keychainAvailable={null} />;
    case "status":
      return (
        <IdleLock minutes={view.status.idleLockMinutes}>
          <StatusScreen status={view.status} />
        </IdleLock>
      );
  }
}

function StatusScreen({ status }: { status: AppStatus }) {
  const profile = status.profile;
  switch (profile.state) {
    case "opening":
      return <Opening />;
    case "failed":
      return (
        <FailureScreen
          error={profile.error}
          keychainAvailable={profile.keychainAvailable ?? null}
          status={status}
        />
      );
    case "ready":
      return profile.account ? (
        <Messenger status={status} account={profile.account} settings={<SettingsList settings={status.settings} />} />
      ) : (
        <ReadyScreen status={status} store={profile.store} />
      );
  }
}

function Brand({ version }: { version?: string }) {
  return (
    <header className="brand">
      <WardMark />
      <span className="brand-name">Ward</span>
      {version !== undefined && (
        <span className="brand-version" data-testid="app-version">
          version {version}
        </span>
      )}
    </header>
  );
}

function Opening() {
  return (
    <main className="screen centered" aria-busy="true">
      <Brand />
      <p className="lead" role="status" data-testid="opening">
        Opening your encrypted history…
      </p>
    </main>
  );
}

function ReadyScreen({ status, store }: { status: AppStatus; store: StoreStatus }) {
  return (
    <main className="screen" data-testid="ready-screen">
      <Brand version={status.version} />
      <h1>This computer is ready for Ward</h1>
      <ul className="checks" aria-label="Security status">
        <li data-testid="keychain-state" data-state="available">
          <Mark ok />
          <div>
            <strong>Keychain available.</strong> Your keys are kept in {status.keychainBackend},
            never in a file.
          </div>
        </li>
        <li data-testid="store-state" data-state="encrypted">
          <Mark ok />
          <div>
            <strong>History stored encrypted on this device.</strong>{" "}
            {store.created
              ? "A new encrypted history was created for this profile."
              : "Your encrypted history was opened."}{" "}
            <span className="detail">
              SQLCipher {store.cipherVersion}, schema version {store.schemaVersion}.
            </span>
          </div>
        </li>
      </ul>
      <Enrollment defaults={status.enrollment} />
      <p className="detail" data-testid="data-dir">
        Profile folder: <code>{status.dataDir}</code>
      </p>
      <SettingsList settings={status.settings} />
    </main>
  );
}

/** Labels for the policy keys, in words a clinician knows. */
export const SETTING_LABELS: Record<string, string> = {
  relay_url: "Relay server",
  relay_spki_sha256: "Relay certificate pinning",
  notification_level: "Notifications show",
  screen_capture_protection: "Protection from screenshots",
  idle_lock_minutes: "Lock when idle",
  attachment_max_mb: "Largest attachment",
  attachment_allowed_types: "Attachment types",
  retention_days: "Keep messages on this device",
  block_changed_unverified_keys: "Block sending after a key change until verified",
};

/** The settings in force; those the organization set are marked, since they cannot be changed. */
export function SettingsList({ settings }: { settings: SettingView[] }) {
  return (
    <section aria-labelledby="settings-heading" data-testid="settings">
      <h2 id="settings-heading">Settings</h2>
      <dl className="settings">
        {settings.map((setting) => (
          <div key={setting.key} data-testid={`setting-${setting.key}`} data-managed={setting.managed}>
            <dt>{SETTING_LABELS[setting.key] ?? setting.key}</dt>
            <dd>
              {setting.value}
              {setting.managed ? (
                <span className="managed" data-testid="managed">
                  {" "}
                  Managed by your organization
                </span>
              ) : null}
            </dd>
          </div>
        ))}
      </dl>
    </section>
  );
}

/** Headings a clinician reads first; the message under them says what to do. */
export function failureTitle(code: ErrorCode): string {
  switch (code) {
    case "keychain_unavailable":
      return "Keychain not available";
    case "keychain_locked":
      return "Keychain locked";
    case "keychain_access_refused":
      return "Keychain not unlocked";
    case "keychain_failed":
      return "Keychain error";
    case "history_key_missing":
      return "Key to your history is missing";
    case "history_key_rejected":
      return "Key does not match your history";
    case "history_damaged":
      return "Message history damaged";
    case "history_too_new":
      return "Ward needs an update";
    case "disk_failed":
      return "Ward's folder can't be used";
    case "not_ready":
      return "Ward is still starting";
    case "policy_invalid":
      return "Your organization's settings need fixing";
    case "not_enrolled":
      return "Ward is not set up yet";
    case "relay_unreachable":
      return "Can't reach the hospital relay";
    case "relay_refused":
      return "The relay refused";
    case "relay_untrusted":
      return "The relay's identity could not be confirmed";
    case "managed_relay":
      return "Relay set by your organization";
    case "key_changed_unverified":
      return "A security key changed";
    case "attachment_refused":
      return "File not allowed";
    case "not_found":
      return "Not found";
    case "action_failed":
      return "That did not work";
  }
}

/** Whether starting again can help without IT: a keychain can be unlocked, a disk freed. */
export function canTryAgain(code: ErrorCode): boolean {
  switch (code) {
    case "keychain_unavailable":
    case "keychain_locked":
    case "keychain_access_refused":
    case "keychain_failed":
    case "history_key_missing":
    case "disk_failed":
    case "not_ready":
    case "relay_unreachable":
    case "action_failed":
      return true;
    case "history_key_rejected":
    case "history_damaged":
    case "history_too_new":
    case "policy_invalid":
    case "not_enrolled":
    case "relay_refused":
    case "relay_untrusted":
    case "managed_relay":
    case "key_changed_unverified":
    case "attachment_refused":
    case "not_found":
      return false;
  }
}

function FailureScreen({
  error,
  keychainAvailable,
  status,
}: {
  error: IpcError;
  keychainAvailable: boolean | null;
  status?: AppStatus;
}) {
  return (
    <main className="screen failure" data-testid="failure-screen" data-code={error.code}>
      <Brand {...(status ? { version: status.version } : {})} />
      <div role="alert" className="failure-body">
        <h1>
          <Mark ok={false} /> {failureTitle(error.code)}
        </h1>
        <p className="lead" data-testid="failure-message">
          {error.message}
        </p>
      </div>
      {canTryAgain(error.code) && (
        <button type="button" className="primary" onClick={() => void commands.restartApp()}>
          Try again
        </button>
      )}
      <dl className="facts">
        {keychainAvailable !== null && (
          <>
            <dt>Keychain</dt>
            <dd data-testid="keychain-state" data-state={keychainAvailable ? "available" : "unavailable"}>
              {keychainAvailable ? "available" : "not available"}
              {status ? ` — ${status.keychainBackend}` : ""}
            </dd>
          </>
        )}
        <dt>For IT</dt>
        <dd>
          error code <code data-testid="failure-code">{error.code}</code>
          {status ? (
            <>
              , profile folder <code>{status.dataDir}</code>
            </>
          ) : null}
        </dd>
      </dl>
    </main>
  );
}

function Mark({ ok }: { ok: boolean }) {
  return (
    <svg className={ok ? "mark ok" : "mark bad"} viewBox="0 0 24 24" aria-hidden="true">
      <circle cx="12" cy="12" r="11" />
      {ok ? <path d="M6.5 12.5l3.5 3.5 7.5-8" /> : <path d="M8 8l8 8M16 8l-8 8" />}
    </svg>
  );
}

function WardMark() {
  return (
    <svg className="ward-mark" viewBox="0 0 1024 1024" aria-hidden="true">
      <rect x="32" y="32" width="960" height="960" rx="200" />
      <path d="M512 168 L792 268 V520 C792 690 672 806 512 864 C352 806 232 690 232 520 V268 Z" />
      <path d="M462 356 H562 V466 H672 V566 H562 V676 H462 V566 H352 V466 H462 Z" />
    </svg>
  );
}
