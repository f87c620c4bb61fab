// The app as clinicians run it, without WebDriver: the page runs in an ephemeral WebKit context.
// WebKit still creates its default data folder (salts and an empty HSTS cache, from the default
// context tauri-runtime-wry makes at start), and nothing the page could store may appear beside
// them. The screenshot is what the X server shows.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn, execFileSync } from "node:child_process";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { app, artifacts, filesUnder, makeHome, repoRoot, webStorageLeftovers } from "./harness.mjs";

test("without WebDriver the webview is ephemeral and leaves nothing on disk", async () => {
  const home = makeHome("ephemeral");
  const env = { ...process.env, ...home.env };
  delete env.DBUS_SESSION_BUS_ADDRESS;
  delete env.TAURI_WEBVIEW_AUTOMATION;
  const keyring = join(repoRoot, "scripts/start-test-keyring");
  const child = spawn(
    "dbus-run-session",
    ["--", "bash", "-c", `"${keyring}" ward-e2e && exec "${app}" --data-dir "${home.dataDir}"`],
    { env, detached: true, stdio: "ignore" },
  );
  try {
    const store = join(home.dataDir, "ward.db");
    for (let attempt = 0; !existsSync(store); attempt += 1) {
      assert.ok(attempt < 150, "the app did not create its store within 30 s");
      assert.equal(child.exitCode, null, "the app exited");
      await sleep(200);
    }
    // Time for the page to load and paint, and for any storage it used to reach the disk.
    await sleep(4000);
    execFileSync("import", ["-window", "root", join(artifacts, "ephemeral-window.png")]);
  } finally {
    process.kill(-child.pid, "SIGTERM");
  }
  await sleep(500);

  assert.deepEqual(webStorageLeftovers(home.root), []);
  assert.ok(filesUnder(home.dataDir).some((file) => file.endsWith("ward.db")));
});
