// The one way a failed command is shown: Ward's own sentence, announced to screen readers, with
// the error's code kept as an attribute for tests (never shown: clinicians need the sentence).
import type { IpcError } from "./bindings";

export function ErrorAlert({ error, testId }: { error: IpcError | null; testId?: string }) {
  if (!error) return null;
  return (
    <p role="alert" className="error" data-testid={testId} data-code={error.code}>
      {error.message}
    </p>
  );
}
