// The real app under a managed policy (debug builds read WARD_POLICY_FILE in place of
// /etc/ward/policy.toml): the settings the organization set are marked as managed, the others not.
import { test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { makeHome, openApp, screenshot, startDriver } from "./harness.mjs";

test("settings set by the organization's policy are marked managed in the real app", async () => {
  const home = makeHome("policy");
  const policy = join(home.root, "policy.toml");
  writeFileSync(policy, 'notification_level = "none"\nattachment_max_mb = 50\n');
  home.env.WARD_POLICY_FILE = policy;
  const driver = await startDriver({ home, port: 4454, keyring: true });
  try {
    const browser = await openApp({ port: 4454, dataDir: home.dataDir });
    try {
      await browser.$('[data-testid="ready-screen"]').waitForExist({ timeout: 30000 });
      const level = browser.$('[data-testid="setting-notification_level"]');
      assert.equal(await level.getAttribute("data-managed"), "true");
      assert.match(await level.getText(), /No notifications/);
      assert.match(await level.getText(), /Managed by your organization/);
      const size = browser.$('[data-testid="setting-attachment_max_mb"]');
      assert.match(await size.getText(), /50 MB/);
      assert.match(await size.getText(), /Managed by your organization/);
      const lock = browser.$('[data-testid="setting-idle_lock_minutes"]');
      assert.equal(await lock.getAttribute("data-managed"), "false");
      assert.doesNotMatch(await lock.getText(), /Managed by your organization/);
      await screenshot(browser, "managed-settings.png");
    } finally {
      await browser.deleteSession();
    }
  } finally {
    driver.stop();
  }
});

test("an invalid policy stops Ward with a message for IT, and nothing is created", async () => {
  const home = makeHome("bad-policy");
  const policy = join(home.root, "policy.toml");
  writeFileSync(policy, "idle_lock_minutes = 99999\n");
  home.env.WARD_POLICY_FILE = policy;
  const driver = await startDriver({ home, port: 4454, keyring: true });
  try {
    const browser = await openApp({ port: 4454, dataDir: home.dataDir });
    try {
      const failure = browser.$('[data-testid="failure-screen"]');
      await failure.waitForExist({ timeout: 30000 });
      assert.equal(await failure.getAttribute("data-code"), "policy_invalid");
      const message = await browser.$('[data-testid="failure-message"]').getText();
      assert.match(message, /tell IT/);
      assert.match(message, /idle_lock_minutes/);
      assert.ok(message.includes(policy), message);
      assert.equal(await browser.$("button=Try again").isExisting(), false);
      await screenshot(browser, "policy-invalid.png");
    } finally {
      await browser.deleteSession();
    }
    assert.equal(existsSync(join(home.dataDir, "ward.db")), false, "a store was created");
  } finally {
    driver.stop();
  }
});
