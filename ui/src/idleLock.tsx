// The idle lock: after the organization's `idle_lock_minutes` without keyboard or pointer input,
// Ward covers its window so a screen left open on a ward shows nothing to passers-by. It is a
// privacy screen, not a sign-in: the keys stay in the OS keychain, which the OS session guards.
import { useEffect, useRef, useState, type ReactNode } from "react";

const ACTIVITY = ["keydown", "pointerdown", "pointermove", "wheel", "touchstart"] as const;

/** Whether Ward is locked now; `unlock` ends it. `minutes` of 0 never locks. */
export function useIdleLock(minutes: number): { locked: boolean; unlock: () => void } {
  const [locked, setLocked] = useState(false);
  const timer = useRef<ReturnType<typeof setTimeout> | undefined>(undefined);

  useEffect(() => {
    if (minutes <= 0) return undefined;
    const restart = () => {
      clearTimeout(timer.current);
      timer.current = setTimeout(() => setLocked(true), minutes * 60_000);
    };
    restart();
    for (const name of ACTIVITY) window.addEventListener(name, restart, { passive: true });
    return () => {
      clearTimeout(timer.current);
      for (const name of ACTIVITY) window.removeEventListener(name, restart);
    };
  }, [minutes]);

  return { locked, unlock: () => setLocked(false) };
}

/** Covers the window while locked; everything behind it is hidden from view and from the keyboard. */
export function IdleLock({ minutes, children }: { minutes: number; children: ReactNode }) {
  const { locked, unlock } = useIdleLock(minutes);
  const button = useRef<HTMLButtonElement>(null);
  useEffect(() => {
    if (locked) button.current?.focus();
  }, [locked]);
  return (
    <>
      <div hidden={locked} aria-hidden={locked}>
        {children}
      </div>
      {locked ? (
        <main className="screen lock" data-testid="idle-lock" role="dialog" aria-modal="true" aria-labelledby="lock-title">
          <h1 id="lock-title">Ward is locked</h1>
          <p className="lead">
            Ward hid your conversations after {minutes} {minutes === 1 ? "minute" : "minutes"} without use,
            as your organization asks.
          </p>
          <button ref={button} type="button" onClick={unlock}>
            Continue
          </button>
        </main>
      ) : null}
    </>
  );
}
