// The app as clinicians run it, without WebDriver: two instances side by side, two profiles, one
// keychain. The page runs in an ephemeral WebKit context; WebKit still creates its default data
// folder (salts and an empty HSTS cache, from the default context tauri-runtime-wry makes at
// start), and nothing the page could store may appear beside them. The screenshot is what the X
// server shows.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn, execFileSync } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { app, artifacts, keychainSecret, makeHome, repoRoot, webStorageLeftovers } from "./harness.mjs";

test("two clinicians side by side, each with an ephemeral webview and their own keys", async () => {
  const home = makeHome("side-by-side");
  const profiles = [join(home.root, "nurse-a"), join(home.root, "doctor-b")];
  const env = { ...process.env, ...home.env };
  delete env.DBUS_SESSION_BUS_ADDRESS;
  delete env.TAURI_WEBVIEW_AUTOMATION;
  const keyring = join(repoRoot, "scripts/start-test-keyring");
  const busFile = join(home.root, "bus-address");
  const launch = profiles.map((dir) => `"${app}" --data-dir "${dir}" & `).join("");
  const child = spawn(
    "dbus-run-session",
    ["--", "bash", "-c", `"${keyring}" ward-e2e && echo "$DBUS_SESSION_BUS_ADDRESS" > "${busFile}" && ${launch} wait`],
    { env, detached: true, stdio: "ignore" },
  );
  let keys;
  try {
    for (let attempt = 0; !profiles.every((dir) => existsSync(join(dir, "ward.db"))); attempt += 1) {
      assert.ok(attempt < 150, "the two instances did not create their stores within 30 s");
      assert.equal(child.exitCode, null, "the apps exited");
      await sleep(200);
    }
    // Time for both pages to load and paint, and for any storage they used to reach the disk.
    await sleep(4000);
    execFileSync("import", ["-window", "root", join(artifacts, "side-by-side.png")]);
    const bus = readFileSync(busFile, "utf8").trim();
    keys = profiles.map((dir) => {
      const id = readFileSync(join(dir, "profile-id"), "utf8").trim();
      return { id, key: keychainSecret(bus, `${id}:store-key`) };
    });
  } finally {
    process.kill(-child.pid, "SIGTERM");
  }
  await sleep(500);

  const [a, b] = keys;
  assert.notEqual(a.id, b.id, "the two profiles share a keychain namespace");
  assert.equal(a.key.length, 32);
  assert.equal(b.key.length, 32);
  assert.ok(!a.key.equals(b.key), "the two profiles share a store key");
  assert.deepEqual(webStorageLeftovers(home.root), []);
});
