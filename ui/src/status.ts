// Reads Ward's status through the generated bindings and follows the status event. The UI keeps
// this only in memory: WebKit would write any web storage to disk as plain SQLite.
import { useEffect, useState } from "react";
import { commands, events, type AppStatus, type IpcError } from "./bindings";

export type StatusView =
  | { kind: "loading" }
  | { kind: "status"; status: AppStatus }
  | { kind: "ipcFailed"; error: IpcError };

export function useAppStatus(): StatusView {
  const [view, setView] = useState<StatusView>({ kind: "loading" });

  useEffect(() => {
    let cancelled = false;
    let unlisten: (() => void) | undefined;

    // Subscribe before asking, so a status that changes in between is not missed.
    void events.appStatus
      .listen((event) => {
        if (!cancelled) setView({ kind: "status", status: event.payload });
      })
      .then(async (stop) => {
        unlisten = stop;
        if (cancelled) {
          stop();
          return;
        }
        const result = await commands.appStatus();
        if (cancelled) return;
        setView((current) => {
          // An event that arrived meanwhile is at least as new as this answer.
          if (current.kind === "status" && current.status.profile.state !== "opening") {
            return current;
          }
          return result.status === "ok"
            ? { kind: "status", status: result.data }
            : { kind: "ipcFailed", error: result.error };
        });
      });

    return () => {
      cancelled = true;
      unlisten?.();
    };
  }, []);

  return view;
}
