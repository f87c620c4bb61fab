// Starts the pieces a WebDriver test of the real app needs: a private XDG tree, a D-Bus session
// (with or without gnome-keyring), and tauri-driver inside it, which launches the real
// ward-desktop binary through WebKitWebDriver. Everything is torn down by the test that made it.
import { spawn, execFileSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, openSync, readFileSync, readSync, closeSync, readdirSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { basename, dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { setTimeout as sleep } from "node:timers/promises";
import { remote } from "webdriverio";

const here = dirname(fileURLToPath(import.meta.url));
export const repoRoot = resolve(here, "../..");
export const app = process.env.WARD_APP ?? join(repoRoot, "target/debug/ward-desktop");
export const artifacts = process.env.WARD_E2E_ARTIFACTS ?? join(repoRoot, "target/e2e");

/** The version in the workspace Cargo.toml: the one place Ward's version is set. */
export function cargoVersion() {
  const toml = readFileSync(join(repoRoot, "Cargo.toml"), "utf8");
  const section = toml.split("[workspace.package]")[1] ?? "";
  const match = section.match(/^version = "([^"]+)"/m);
  if (!match) throw new Error("no version in [workspace.package]");
  return match[1];
}

/** A private home: XDG data, config, cache and runtime dirs, and a profile folder path. */
export function makeHome(name) {
  const root = mkdtempSync(join(tmpdir(), `ward-e2e-${name}-`));
  const env = {
    HOME: join(root, "home"),
    XDG_DATA_HOME: join(root, "data"),
    XDG_CONFIG_HOME: join(root, "config"),
    XDG_CACHE_HOME: join(root, "cache"),
    XDG_RUNTIME_DIR: join(root, "run"),
  };
  for (const dir of Object.values(env)) mkdirSync(dir, { recursive: true, mode: 0o700 });
  return { root, env, dataDir: join(root, "profile") };
}

/**
 * Starts tauri-driver on `port` in a new D-Bus session. With `keyring`, an unlocked gnome-keyring
 * serves the Secret Service; without it, the bus has no service directories, so nothing can
 * provide one.
 */
export async function startDriver({ home, port, keyring, notifications = false }) {
  const busFile = join(home.root, "bus-address");
  const unlock = keyring
    ? `"${join(repoRoot, "scripts/start-test-keyring")}" ward-e2e && `
    : "";
  // A real notification daemon on the same bus, and a recording of every Notify call made to it.
  const notify = notifications
    ? `dunst -config /dev/null >"${join(home.root, "dunst.log")}" 2>&1 & ` +
      `dbus-monitor "interface=org.freedesktop.Notifications,member=Notify" >"${notificationLog(home)}" 2>&1 & ` +
      `for i in $(seq 50); do dbus-send --session --print-reply --dest=org.freedesktop.DBus / org.freedesktop.DBus.NameHasOwner string:org.freedesktop.Notifications | grep -q true && break; sleep 0.1; done; `
    : "";
  const inner = `${unlock}${notify}echo "$DBUS_SESSION_BUS_ADDRESS" > "${busFile}"; exec tauri-driver --port ${port} --native-port ${port + 1}`;
  const session = keyring
    ? ["--", "bash", "-c", inner]
    : [`--config-file=${join(repoRoot, "scripts/dbus-session-without-services.conf")}`, "--", "bash", "-c", inner];
  const log = openSync(join(artifacts, `tauri-driver-${port}.log`), "w");
  const env = { ...process.env, ...home.env };
  delete env.DBUS_SESSION_BUS_ADDRESS;
  const child = spawn("dbus-run-session", session, {
    env,
    detached: true,
    stdio: ["ignore", log, log],
  });
  closeSync(log);

  for (let attempt = 0; attempt < 100; attempt += 1) {
    if (child.exitCode !== null) throw new Error(`tauri-driver exited with ${child.exitCode}`);
    try {
      const response = await fetch(`http://127.0.0.1:${port}/status`);
      if (response.ok) break;
    } catch {
      // Not listening yet.
    }
    if (attempt === 99) throw new Error("tauri-driver did not start within 20 s");
    await sleep(200);
  }
  const busAddress = readFileSync(busFile, "utf8").trim();
  return {
    busAddress,
    stop() {
      try {
        process.kill(-child.pid, "SIGTERM");
      } catch {
        // Already gone.
      }
    },
  };
}

/** A WebDriver session on the real app, with the profile in `dataDir`. */
export function openApp({ port, dataDir, args = [] }) {
  return remote({
    hostname: "127.0.0.1",
    port,
    logLevel: "error",
    connectionRetryCount: 0,
    capabilities: {
      "wdio:enforceWebDriverClassic": true,
      "tauri:options": { application: app, args: ["--data-dir", dataDir, ...args] },
    },
  });
}

/**
 * A screenshot of what the window really shows: WebKit can hand back the frame before the first
 * paint, so wait for fonts and two animation frames first.
 */
export async function screenshot(browser, name) {
  await browser.executeAsync((done) => {
    document.fonts.ready.then(() => requestAnimationFrame(() => requestAnimationFrame(() => done())));
  });
  await browser.saveScreenshot(join(artifacts, name));
}

/** Every file under `dir`, recursively. */
export function filesUnder(dir) {
  if (!existsSync(dir)) return [];
  const found = [];
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) found.push(...filesUnder(path));
    else if (entry.isFile()) found.push(path);
  }
  return found;
}

/** Files that start with SQLite's plaintext header: what WebKit's storage would leave behind. */
export function plaintextSqliteFiles(dir) {
  const header = Buffer.from("SQLite format 3\0");
  return filesUnder(dir).filter((path) => {
    if (statSync(path).size < header.length) return false;
    const fd = openSync(path, "r");
    const start = Buffer.alloc(header.length);
    readSync(fd, start, 0, header.length, 0);
    closeSync(fd);
    return start.equals(header);
  });
}

/**
 * WebKit's record of which origin a storage bucket belongs to: a few bytes naming Ward's own
 * origin (tauri://localhost) twice, written when a bucket is touched. It holds no page data.
 */
function isOriginRecord(file) {
  if (basename(file) !== "origin") return false;
  const words = readFileSync(file).toString("latin1").split(/[^\x20-\x7e]+/).filter(Boolean);
  return words.length > 0 && words.every((word) => word === "tauri" || word === "localhost");
}

/**
 * What a webview left on disk that could hold page data: any plaintext SQLite file, and any file
 * in WebKit's storage folders other than their salt and origin records. libsoup's HSTS policy cache is the one SQLite
 * file a non-ephemeral WebKit always creates; it can only hold policies of HTTPS hosts the page
 * visited, and Ward's page visits none, so it must be empty.
 */
export function webStorageLeftovers(dir) {
  const leftovers = [];
  for (const file of plaintextSqliteFiles(dir)) {
    if (basename(file) === "hsts-storage.sqlite") {
      const policies = execFileSync("sqlite3", ["-readonly", file, "SELECT count(*) FROM soup_hsts_policies"])
        .toString()
        .trim();
      if (policies !== "0") leftovers.push(`${file}: ${policies} HSTS policies`);
    } else {
      leftovers.push(file);
    }
  }
  const storage = /\/(storage|CacheStorage|localstorage|databases|IndexedDB|mediakeys|WebKitCache)\//;
  for (const file of filesUnder(dir)) {
    if (storage.test(file) && basename(file) !== "salt" && !isOriginRecord(file)) leftovers.push(file);
  }
  return [...new Set(leftovers)];
}

/** Reads a Ward keychain entry through libsecret's own tool, on the test's D-Bus session. */
export function keychainSecret(busAddress, username) {
  return execFileSync(
    "secret-tool",
    ["lookup", "service", "org.ward.desktop", "username", username],
    { env: { ...process.env, DBUS_SESSION_BUS_ADDRESS: busAddress } },
  );
}

/** Where `startDriver({ notifications: true })` records the Notify calls on the session bus. */
export function notificationLog(home) {
  return join(home.root, "notify-calls.log");
}

/**
 * A real relay process on loopback with its embedded SQLite in a fresh folder, or in `dataDir` to
 * restart one that was stopped, with everything it held.
 */
export async function startRelay(port, { dataDir = mkdtempSync(join(tmpdir(), "ward-e2e-relay-")) } = {}) {
  const relay = process.env.WARD_RELAY ?? join(repoRoot, "target/debug/ward-relay");
  const log = openSync(join(artifacts, `relay-${port}.log`), "w");
  const child = spawn(relay, ["--data-dir", dataDir, "serve", "--listen", `127.0.0.1:${port}`], {
    stdio: ["ignore", log, log],
  });
  closeSync(log);
  const url = `http://127.0.0.1:${port}`;
  for (let attempt = 0; attempt < 100; attempt += 1) {
    if (child.exitCode !== null) throw new Error(`the relay exited with ${child.exitCode}`);
    try {
      if ((await fetch(`${url}/healthz`)).ok) break;
    } catch {
      // Not listening yet.
    }
    if (attempt === 99) throw new Error("the relay did not start within 20 s");
    await sleep(200);
  }
  return {
    url,
    dataDir,
    invite(name, role) {
      return execFileSync(relay, ["--data-dir", dataDir, "invite", "create", "--name", name, "--role", role])
        .toString()
        .trim();
    },
    /** Stops it; resolves once the process has exited and the port is free. */
    stop() {
      if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
      const exited = new Promise((resolve) => child.once("exit", resolve));
      child.kill("SIGTERM");
      return exited;
    },
  };
}

/** How many times `needle` occurs in the files under each of `dirs`, file by file. */
export function occurrences(dirs, needle) {
  const found = [];
  const bytes = Buffer.from(needle);
  for (const dir of dirs) {
    for (const file of filesUnder(dir)) {
      let content;
      try {
        content = readFileSync(file);
      } catch {
        continue;
      }
      let count = 0;
      for (let at = content.indexOf(bytes); at >= 0; at = content.indexOf(bytes, at + 1)) count += 1;
      if (count > 0) found.push(`${file}: ${count}`);
    }
  }
  return found;
}
