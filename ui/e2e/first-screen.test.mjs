// The real app, a real keychain: the first screen must show the state of the real gnome-keyring
// and the real SQLCipher file, and nothing may reach the disk in clear.
import { test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import {
  cargoVersion,
  filesUnder,
  keychainSecret,
  makeHome,
  openApp,
  screenshot,
  startDriver,
  webStorageLeftovers,
} from "./harness.mjs";

test("first run with a keychain: real keychain and encrypted store on screen", async () => {
  const home = makeHome("keychain");
  const driver = await startDriver({ home, port: 4444, keyring: true });
  try {
    const browser = await openApp({ port: 4444, dataDir: home.dataDir });
    try {
      const ready = await browser.$('[data-testid="ready-screen"]');
      await ready.waitForExist({ timeout: 30000 });
      assert.equal(await browser.$('[data-testid="app-version"]').getText(), `version ${cargoVersion()}`);
      const keychain = await browser.$('[data-testid="keychain-state"]');
      assert.equal(await keychain.getAttribute("data-state"), "available");
      assert.match(await keychain.getText(), /Keychain available/);
      const store = await browser.$('[data-testid="store-state"]');
      const storeText = await store.getText();
      assert.match(storeText, /History stored encrypted on this device/);
      assert.match(storeText, /SQLCipher 4\.\d+\.\d+ community/);
      assert.match(storeText, /A new encrypted history was created/);
      assert.match(await browser.$('[data-testid="data-dir"]').getText(), new RegExp(home.dataDir));
      await screenshot(browser, "first-screen.png");
    } finally {
      await browser.deleteSession();
    }

    // What the screen claimed is what is on disk and in the keychain.
    const db = readFileSync(join(home.dataDir, "ward.db"));
    assert.ok(db.length > 0);
    assert.ok(!db.subarray(0, 16).equals(Buffer.from("SQLite format 3\0")), "the store is plaintext");
    const profileId = readFileSync(join(home.dataDir, "profile-id"), "utf8").trim();
    const key = keychainSecret(driver.busAddress, `${profileId}:store-key`);
    assert.equal(key.length, 32, "the store key is 32 raw bytes in the keychain");
    const keyHex = key.toString("hex");
    for (const file of filesUnder(home.root)) {
      const bytes = readFileSync(file);
      assert.ok(!bytes.includes(key), `raw store key in ${file}`);
      assert.ok(!bytes.includes(Buffer.from(keyHex)), `hex store key in ${file}`);
      assert.ok(!bytes.includes(Buffer.from(keyHex.toUpperCase())), `hex store key in ${file}`);
    }

    // The second start opens the same history.
    const again = await openApp({ port: 4444, dataDir: home.dataDir });
    try {
      const store = await again.$('[data-testid="store-state"]');
      await store.waitForExist({ timeout: 30000 });
      assert.match(await store.getText(), /Your encrypted history was opened/);
    } finally {
      await again.deleteSession();
    }

    // Under WebDriver the webview cannot be ephemeral (see ephemeral_webview in src-tauri), so this
    // is the stricter check: with persistent storage available, the UI still stored nothing.
    assert.deepEqual(webStorageLeftovers(home.root), []);
    assert.ok(existsSync(join(home.dataDir, "ward.db")));
  } finally {
    driver.stop();
  }
});
