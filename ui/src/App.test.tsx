// The first screen and the error screens, rendered from the same typed status the Rust side sends.
// The bindings module is replaced so these tests control what "Rust" answers; the real IPC is
// exercised by the WebDriver end-to-end test.
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { act, cleanup, fireEvent, render, screen } from "@testing-library/react";
import type { AppStatus, ErrorCode, ProfileStatus } from "./bindings";

type Listener = (event: { payload: AppStatus }) => void;

const bridge = vi.hoisted(() => ({
  answer: null as unknown,
  listeners: [] as Listener[],
  restarts: 0,
}));

vi.mock("./bindings", () => ({
  commands: {
    appStatus: vi.fn(async () => bridge.answer),
    restartApp: vi.fn(async () => {
      bridge.restarts += 1;
    }),
  },
  events: {
    appStatus: {
      listen: vi.fn(async (listener: Listener) => {
        bridge.listeners.push(listener);
        return () => {
          bridge.listeners = bridge.listeners.filter((l) => l !== listener);
        };
      }),
    },
  },
}));

import { App, canTryAgain, failureTitle } from "./App";

function status(profile: ProfileStatus): AppStatus {
  return {
    appName: "Ward",
    version: "0.1.0",
    keychainBackend: "Secret Service (GNOME Keyring or KWallet)",
    dataDir: "/home/nurse/.local/share/org.ward.desktop/profile",
    profile,
    settings: [
      { key: "notification_level", value: '"New secure message" only', managed: true },
      { key: "idle_lock_minutes", value: "Never", managed: false },
    ],
    idleLockMinutes: 0,
    enrollment: { relayUrl: "https://ward.hospital.example", relayLocked: true, invite: null },
  };
}

async function renderWith(answer: AppStatus) {
  bridge.answer = { status: "ok", data: answer };
  render(<App />);
  await act(async () => {});
}

beforeEach(() => {
  bridge.listeners = [];
  bridge.restarts = 0;
});
afterEach(cleanup);

describe("first screen", () => {
  it("shows name, version, the keychain and the encrypted store from the real status", async () => {
    await renderWith(
      status({
        state: "ready",
        store: { cipherVersion: "4.19.0 community", schemaVersion: 1, created: true },
      }),
    );
    expect(screen.getByTestId("app-version").textContent).toBe("version 0.1.0");
    expect(screen.getByTestId("keychain-state").dataset.state).toBe("available");
    expect(screen.getByTestId("keychain-state").textContent).toContain("Secret Service");
    const store = screen.getByTestId("store-state");
    expect(store.textContent).toContain("History stored encrypted on this device");
    expect(store.textContent).toContain("SQLCipher 4.19.0 community");
    expect(store.textContent).toContain("A new encrypted history was created");
  });

  it("marks the settings the organization manages, and only those", async () => {
    await renderWith(
      status({
        state: "ready",
        store: { cipherVersion: "4.19.0 community", schemaVersion: 3, created: false },
      }),
    );
    const managed = screen.getByTestId("setting-notification_level");
    expect(managed.textContent).toContain("Notifications show");
    expect(managed.textContent).toContain("Managed by your organization");
    const free = screen.getByTestId("setting-idle_lock_minutes");
    expect(free.textContent).toContain("Lock when idle");
    expect(free.textContent).not.toContain("Managed by your organization");
  });

  it("waits for the profile, then follows the status event", async () => {
    await renderWith(status({ state: "opening" }));
    expect(screen.getByTestId("opening")).toBeTruthy();
    await act(async () => {
      for (const listener of bridge.listeners) {
        listener({
          payload: status({
            state: "ready",
            store: { cipherVersion: "4.19.0 community", schemaVersion: 1, created: false },
          }),
        });
      }
    });
    expect(screen.getByTestId("store-state").textContent).toContain(
      "Your encrypted history was opened",
    );
  });
});

describe("error screens branch on the code", () => {
  it("fills the window with the keychain message and a Try again that restarts Ward", async () => {
    const message = "Ward can't reach this computer's keychain, where it keeps your encryption keys.";
    await renderWith(
      status({
        state: "failed",
        keychainAvailable: false,
        error: { code: "keychain_unavailable", message },
      }),
    );
    const failure = screen.getByTestId("failure-screen");
    expect(failure.dataset.code).toBe("keychain_unavailable");
    expect(screen.getByRole("alert").textContent).toContain(message);
    expect(screen.getByTestId("keychain-state").dataset.state).toBe("unavailable");
    expect(screen.queryByTestId("ready-screen")).toBeNull();
    fireEvent.click(screen.getByRole("button", { name: "Try again" }));
    expect(bridge.restarts).toBe(1);
  });

  it("offers no Try again where only IT can help", async () => {
    await renderWith(
      status({
        state: "failed",
        keychainAvailable: true,
        error: { code: "history_key_rejected", message: "The key does not open it." },
      }),
    );
    expect(screen.getByRole("heading").textContent).toContain("Key does not match your history");
    expect(screen.queryByRole("button", { name: "Try again" })).toBeNull();
  });

  it("has a distinct heading for every code", () => {
    const codes: ErrorCode[] = [
      "keychain_unavailable",
      "keychain_locked",
      "keychain_access_refused",
      "keychain_failed",
      "history_key_missing",
      "history_key_rejected",
      "history_damaged",
      "history_too_new",
      "disk_failed",
      "not_ready",
      "policy_invalid",
    ];
    const titles = new Set(codes.map(failureTitle));
    expect(titles.size).toBe(codes.length);
    expect(codes.filter(canTryAgain)).not.toContain("history_damaged");
  });
});

describe("the idle lock", () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  it("hides the window after the organization's idle minutes, and input restarts the wait", async () => {
    vi.useFakeTimers();
    await renderWith({
      ...status({
        state: "ready",
        store: { cipherVersion: "4.19.0 community", schemaVersion: 4, created: false },
      }),
      idleLockMinutes: 2,
    });
    await act(async () => {
      vi.advanceTimersByTime(90_000);
    });
    fireEvent.keyDown(window, { key: "Shift" });
    await act(async () => {
      vi.advanceTimersByTime(90_000);
    });
    expect(screen.queryByTestId("idle-lock")).toBeNull();
    await act(async () => {
      vi.advanceTimersByTime(31_000);
    });
    const lock = screen.getByTestId("idle-lock");
    expect(lock.textContent).toContain("Ward is locked");
    expect(screen.getByTestId("ready-screen").closest("[hidden]")).not.toBeNull();
    const button = screen.getByRole("button", { name: "Continue" });
    expect(document.activeElement).toBe(button);
    fireEvent.click(button);
    expect(screen.queryByTestId("idle-lock")).toBeNull();
  });

  it("never locks when the setting is 0", async () => {
    vi.useFakeTimers();
    await renderWith(
      status({
        state: "ready",
        store: { cipherVersion: "4.19.0 community", schemaVersion: 4, created: false },
      }),
    );
    await act(async () => {
      vi.advanceTimersByTime(24 * 3_600_000);
    });
    expect(screen.queryByTestId("idle-lock")).toBeNull();
  });
});
