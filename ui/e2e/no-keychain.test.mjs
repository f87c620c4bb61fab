// The real app on a session with no Secret Service: a full-window keychain error, and nothing
// created on disk.
import { test } from "node:test";
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { basename, join } from "node:path";
import { filesUnder, makeHome, openApp, screenshot, startDriver } from "./harness.mjs";

test("no Secret Service: the keychain error fills the window and nothing is created", async () => {
  const home = makeHome("no-keychain");
  const driver = await startDriver({ home, port: 4446, keyring: false });
  try {
    const browser = await openApp({ port: 4446, dataDir: home.dataDir });
    try {
      const failure = await browser.$('[data-testid="failure-screen"]');
      await failure.waitForExist({ timeout: 30000 });
      assert.equal(await failure.getAttribute("data-code"), "keychain_unavailable");
      assert.equal(await browser.$('[data-testid="failure-code"]').getText(), "keychain_unavailable");
      const keychain = await browser.$('[data-testid="keychain-state"]');
      assert.equal(await keychain.getAttribute("data-state"), "unavailable");
      const alert = await browser.$('[role="alert"]').getText();
      assert.match(alert, /can't reach this computer's keychain/);
      assert.match(alert, /ask IT/);
      assert.ok(await browser.$("button=Try again").isDisplayed());
      assert.equal(await browser.$('[data-testid="ready-screen"]').isExisting(), false);
      await screenshot(browser, "keychain-unavailable.png");
    } finally {
      await browser.deleteSession();
    }
    assert.equal(existsSync(home.dataDir), false, "the profile folder was created");
    const wardFiles = filesUnder(home.root).filter((file) =>
      ["ward.db", "profile-id"].includes(basename(file)),
    );
    assert.deepEqual(wardFiles, []);
  } finally {
    driver.stop();
  }
});
