// Two real app instances, each with its own keychain, D-Bus session and notification daemon,
// enroll with a real relay process, chat both ways, compare safety numbers and search. The
// messages carry a sentinel that must never reach a notification or any file in clear.
import { execFileSync } from "node:child_process";
import { test } from "node:test";
import assert from "node:assert/strict";
import { copyFileSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import {
  artifacts,
  makeHome,
  notificationLog,
  occurrences,
  openApp,
  repoRoot,
  screenshot,
  startDriver,
  startRelay,
} from "./harness.mjs";

const SENTINEL = "SENTINEL7Q4Z";
// pydicom's 12-lead ECG; its lead names are in the file in clear, and must not be in either
// profile after sending and viewing it: the ciphertext is kept, the viewer decrypts into memory.
const ECG_FILE = join(repoRoot, "crates/ward-client/tests/data/waveform_ecg.dcm");
const ECG_PLAINTEXT = "Lead I (Einthoven)";
const screenshots = join(repoRoot, "docs/screenshots");

/** A one-page PDF with a line of text, offsets and all, for the PDF viewer. */
function onePagePdf(text) {
  const objects = [
    "<< /Type /Catalog /Pages 2 0 R >>",
    "<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
    "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Contents 4 0 R /Resources << /Font << /F1 5 0 R >> >> >>",
    null,
    "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
  ];
  const stream = `BT /F1 24 Tf 72 760 Td (${text}) Tj ET`;
  objects[3] = `<< /Length ${stream.length} >>\nstream\n${stream}\nendstream`;
  let pdf = "%PDF-1.4\n";
  const offsets = [];
  objects.forEach((body, index) => {
    offsets.push(pdf.length);
    pdf += `${index + 1} 0 obj\n${body}\nendobj\n`;
  });
  const xref = pdf.length;
  pdf += `xref\n0 ${objects.length + 1}\n0000000000 65535 f \n`;
  for (const offset of offsets) pdf += `${String(offset).padStart(10, "0")} 00000 n \n`;
  pdf += `trailer\n<< /Size ${objects.length + 1} /Root 1 0 R >>\nstartxref\n${xref}\n%%EOF\n`;
  return pdf;
}

/** Opens the newest attachment on `browser`'s screen in its viewer. */
async function openNewestAttachment(browser, name) {
  await browser.waitUntil(
    async () => (await browser.$$('[data-testid="attachment-name"]').map((element) => element.getText())).includes(name),
    { timeout: 60000, timeoutMsg: `${name} did not arrive` },
  );
  const buttons = await browser.$$('[data-testid="open-attachment"]');
  await buttons[buttons.length - 1].click();
}

async function shoot(browser, name) {
  await screenshot(browser, name);
  if (process.env.WARD_SAVE_SCREENSHOTS === "1") {
    mkdirSync(screenshots, { recursive: true });
    copyFileSync(join(artifacts, name), join(screenshots, name));
  }
}

async function enroll(browser, { relayUrl, invite, displayName }) {
  await browser.$('[data-testid="enrollment"]').waitForExist({ timeout: 30000 });
  if (relayUrl !== undefined) {
    await browser.$("#relay-url").setValue(relayUrl);
    await browser.$("#invite-code").setValue(invite);
  }
  if (displayName !== undefined) await browser.$("#display-name").setValue(displayName);
  await browser.$('[data-testid="enroll-submit"]').click();
  await browser.$('[data-testid="messenger"]').waitForExist({ timeout: 30000 });
}

async function send(browser, text) {
  const composer = browser.$('[data-testid="composer"]');
  await composer.waitForExist({ timeout: 10000 });
  await composer.setValue(text);
  await browser.keys("Enter");
  await browser.waitUntil(async () => (await composer.getValue()) === "", {
    timeout: 15000,
    timeoutMsg: "the composer was not cleared after Enter",
  });
}

async function messageTexts(browser) {
  return browser.$$('[data-testid="message-text"]').map((element) => element.getText());
}

async function waitForText(browser, text) {
  await browser.waitUntil(async () => (await messageTexts(browser)).includes(text), {
    timeout: 30000,
    timeoutMsg: `"${text}" did not appear`,
  });
}

test("two clinicians enroll, chat both ways, verify each other, search; no PHI leaks", async () => {
  let relay = await startRelay(47443);
  const alice = makeHome("alice");
  const bob = makeHome("bob");
  const aliceDriver = await startDriver({ home: alice, port: 4444, keyring: true, notifications: true });
  const bobDriver = await startDriver({ home: bob, port: 4454, keyring: true, notifications: true });
  let a;
  let b;
  try {
    const aliceInvite = relay.invite("Dr Alice Example", "physician");
    const bobInvite = relay.invite("Bob Example", "nurse");
    a = await openApp({ port: 4444, dataDir: alice.dataDir });
    b = await openApp({ port: 4454, dataDir: bob.dataDir, args: ["--relay", relay.url, "--invite", bobInvite] });

    // Alice types the relay and her invite; Bob's run hands his in, as scripts/run does.
    await shoot(a, "enrollment.png");
    await enroll(a, { relayUrl: relay.url, invite: aliceInvite, displayName: "Alice Example" });
    // She typed her name without the title IT put on the invite: she is told which name counts.
    assert.match(await a.$('[data-testid="name-note"]').getText(), /IT enrolled you as .Dr Alice Example./);
    assert.equal(await b.$("#invite-code").getValue(), bobInvite);
    await enroll(b, {});
    assert.equal(await a.$('[data-testid="account-name"]').getText(), "Dr Alice Example");
    assert.equal(await b.$('[data-testid="account-name"]').getText(), "Bob Example");

    // Alice finds Bob in the directory and starts a 1:1 chat.
    await a.$('[data-testid="new-chat"]').click();
    await a.$('[data-testid="directory-search"]').setValue("bob");
    const entry = a.$('[data-testid="directory-entry"]');
    await entry.waitForExist({ timeout: 15000 });
    await shoot(a, "new-chat.png");
    await entry.click();
    await a.$('[data-testid="chat"]').waitForExist({ timeout: 30000 });
    assert.equal(await a.$('[data-testid="chat-title"]').getText(), "Bob Example");
    const first = `Bed 12 potassium ${SENTINEL} please review`;
    await send(a, first);
    await waitForText(a, first);

    // Bob's list shows the conversation with one unread message. He was notified too; clicking
    // the notification (dunst's default action) opens the conversation, and he replies.
    const bobItem = b.$('[data-testid="chat-item"]');
    await bobItem.waitForExist({ timeout: 30000 });
    await b.waitUntil(async () => (await bobItem.getAttribute("data-unread")) === "1", {
      timeout: 30000,
      timeoutMsg: "Bob's conversation did not show 1 unread",
    });
    await shoot(b, "conversation-list.png");
    const dunstctl = (...args) =>
      execFileSync("dunstctl", args, { env: { ...process.env, DBUS_SESSION_BUS_ADDRESS: bobDriver.busAddress } })
        .toString()
        .trim();
    await b.waitUntil(async () => Number(dunstctl("count", "displayed")) > 0, {
      timeout: 15000,
      timeoutMsg: "Bob's notification is not on screen",
    });
    dunstctl("action", "0");
    await b.$('[data-testid="chat-item"].selected').waitForExist({
      timeout: 15000,
      timeoutMsg: "clicking the notification did not open the conversation",
    });
    await waitForText(b, first);
    await b.waitUntil(async () => (await bobItem.getAttribute("data-unread")) === "0", { timeout: 15000 });
    const reply = `Reviewed ${SENTINEL}, repeat labs at 14:00`;
    await send(b, reply);
    await waitForText(b, reply);
    await waitForText(a, reply);
    // Bob has read Alice's message: his read receipt turns its status to "Read".
    await a.waitUntil(
      async () => (await a.$$('[data-testid="message"]').map((m) => m.getAttribute("data-status"))).includes("read"),
      { timeout: 30000, timeoutMsg: "Alice's message never showed as read" },
    );
    await shoot(a, "conversation.png");

    // Both see the same safety number; Alice marks Bob verified.
    await a.$('[data-testid="open-safety-number"]').click();
    await b.$('[data-testid="open-safety-number"]').click();
    const aliceNumber = a.$('[data-testid="safety-number"]');
    const bobNumber = b.$('[data-testid="safety-number"]');
    await aliceNumber.waitForExist({ timeout: 15000 });
    await bobNumber.waitForExist({ timeout: 15000 });
    const digits = (await aliceNumber.getText()).replace(/\s+/g, "");
    assert.match(digits, /^\d{60}$/);
    assert.equal((await bobNumber.getText()).replace(/\s+/g, ""), digits);
    assert.ok(await a.$('[data-testid="safety-qr"]').isExisting());
    await shoot(a, "safety-number.png");
    await a.$('[data-testid="mark-verified"]').click();
    await a.$('[data-testid="verified-state"]').waitForExist({ timeout: 10000 });

    // Search finds the first message by a word prefix and jumps to it.
    await a.$('[data-testid="open-search"]').click();
    await a.$('[data-testid="search-query"]').setValue("potass");
    const hit = a.$('[data-testid="search-hit"]');
    await hit.waitForExist({ timeout: 10000 });
    await shoot(a, "search.png");
    await hit.click();
    await a.$(".message.highlighted").waitForExist({ timeout: 10000 });

    // Alice sends the DICOM ECG through the file picker; Bob opens it in the viewer, which draws
    // all twelve leads on ECG paper.
    await a.$('[data-testid="file-input"]').addValue(ECG_FILE);
    const bobAttachment = b.$('[data-testid="open-attachment"]');
    await bobAttachment.waitForExist({ timeout: 60000 });
    assert.equal(await b.$('[data-testid="attachment-name"]').getText(), "waveform_ecg.dcm");
    await bobAttachment.click();
    const canvas = b.$('[data-testid="ecg-canvas"]');
    await canvas.waitForExist({ timeout: 60000 });
    await b.waitUntil(async () => (await canvas.getAttribute("data-drawn-leads")) === "12", {
      timeout: 30000,
      timeoutMsg: "the ECG viewer did not draw 12 leads",
    });
    assert.equal(await canvas.getAttribute("data-labels"), "I,II,III,aVR,aVL,aVF,V1,V2,V3,V4,V5,V6");
    // Each lead's row holds trace ink, not only grid: count near-black pixels per row.
    const inkPerRow = await b.execute(() => {
      const element = document.querySelector('[data-testid="ecg-canvas"]');
      const rowPx = Number(element.getAttribute("data-row-px"));
      const context = element.getContext("2d");
      const { data, width, height } = context.getImageData(0, 0, element.width, element.height);
      const rows = Array.from({ length: Math.round(height / rowPx) }, () => 0);
      for (let y = 0; y < height; y += 1)
        for (let x = 0; x < width; x += 1) {
          const at = (y * width + x) * 4;
          if (data[at] < 90 && data[at + 1] < 90 && data[at + 2] < 90) rows[Math.floor(y / rowPx)] += 1;
        }
      return rows;
    });
    assert.equal(inkPerRow.length, 12);
    for (const [row, ink] of inkPerRow.entries()) assert.ok(ink > 500, `lead row ${row} has only ${ink} ink pixels`);
    await shoot(b, "ecg-viewer.png");
    await b.$('[data-testid="close-viewer"]').click();

    // A PDF report and an image open in their viewers too, from memory.
    const pdfPath = join(artifacts, "discharge-summary.pdf");
    writeFileSync(pdfPath, onePagePdf("Discharge summary"));
    await a.$('[data-testid="file-input"]').addValue(pdfPath);
    await openNewestAttachment(b, "discharge-summary.pdf");
    const page = b.$('[data-testid="pdf-page"]');
    await page.waitForExist({ timeout: 30000 });
    await b.waitUntil(
      async () =>
        b.execute(() => {
          const element = document.querySelector('[data-testid="pdf-page"]');
          if (!element || element.width === 0) return false;
          const { data } = element.getContext("2d").getImageData(0, 0, element.width, element.height);
          let ink = 0;
          for (let at = 0; at < data.length; at += 4) if (data[at + 3] > 0 && data[at] < 100) ink += 1;
          return ink > 200;
        }),
      { timeout: 30000, timeoutMsg: "the PDF page was not drawn" },
    );
    await shoot(b, "pdf-viewer.png");
    await b.$('[data-testid="close-viewer"]').click();
    const imagePath = join(artifacts, "wound-photo.png");
    copyFileSync(join(artifacts, "enrollment.png"), imagePath);
    await a.$('[data-testid="file-input"]').addValue(imagePath);
    await openNewestAttachment(b, "wound-photo.png");
    const image = b.$('[data-testid="image-view"]');
    await image.waitForExist({ timeout: 30000 });
    const naturalWidth = () => b.execute(() => document.querySelector('[data-testid="image-view"]')?.naturalWidth ?? 0);
    await b.waitUntil(async () => (await naturalWidth()) > 0, {
      timeout: 15000,
      timeoutMsg: "the image did not load",
    });
    await b.$('[data-testid="close-viewer"]').click();

    // Bob corrects his reply; Alice sees the new text, marked edited.
    const corrected = `Reviewed ${SENTINEL}, repeat labs at 15:00`;
    const mine = b.$('.message.mine [data-testid="edit-message"]');
    await mine.click();
    const editor = b.$('[data-testid="edit-text"]');
    await editor.setValue(corrected);
    await b.keys("Enter");
    await waitForText(a, corrected);

    // The relay goes away. Alice is told she is offline, writes anyway, and sees the message wait
    // in the outbox; when the relay is back, it goes out by itself and reaches Bob.
    await relay.stop();
    await a.$('[data-testid="connection-banner"][data-online="false"]').waitForExist({
      timeout: 60000,
      timeoutMsg: "no offline banner after the relay stopped",
    });
    const written = `Written offline about ${SENTINEL}`;
    await send(a, written);
    // What she just sent is in view, even though the search earlier jumped to an older message.
    const inView = () =>
      a.execute((text) => {
        const list = document.querySelector('[data-testid="messages"]')?.getBoundingClientRect();
        const shown = [...document.querySelectorAll('[data-testid="message-text"]')].find((e) => e.textContent === text);
        const box = shown?.getBoundingClientRect();
        return Boolean(list && box && box.top >= list.top && box.bottom <= list.bottom);
      }, written);
    await a.waitUntil(inView, { timeout: 10000, timeoutMsg: "the message just sent is not in view" });
    await a.$('[data-testid="retry-message"]').waitForExist({ timeout: 30000 });
    assert.equal(await a.$('[data-testid="outbox-count"]').getText(), "1");
    await shoot(a, "offline.png");
    relay = await startRelay(47443, { dataDir: relay.dataDir });
    await waitForText(b, written);
    await a.$('[data-testid="connection-banner"]').waitForExist({
      reverse: true,
      timeout: 60000,
      timeoutMsg: "the offline banner stayed after the relay came back",
    });

    // Bob was not looking at the conversation when Alice's message came: he was notified, and
    // the notification said nothing but "New secure message".
    await sleep(500);
    const bobCalls = readFileSync(notificationLog(bob), "utf8");
    assert.match(bobCalls, /New secure message/);
    assert.doesNotMatch(bobCalls, new RegExp(SENTINEL));
    assert.doesNotMatch(bobCalls, /potassium|Bed 12/);
    assert.doesNotMatch(readFileSync(notificationLog(alice), "utf8"), new RegExp(SENTINEL));
  } finally {
    await a?.deleteSession().catch(() => {});
    await b?.deleteSession().catch(() => {});
    aliceDriver.stop();
    bobDriver.stop();
    await relay.stop();
  }
  // The sentinel is nowhere in clear: not in either profile (SQLCipher history, attachments),
  // the webviews' data and cache folders, nor the relay's database.
  await sleep(500);
  const leaks = occurrences([alice.root, bob.root, relay.dataDir], SENTINEL);
  assert.deepEqual(leaks, []);
  assert.deepEqual(occurrences([alice.root, bob.root, relay.dataDir], ECG_PLAINTEXT), []);
});
