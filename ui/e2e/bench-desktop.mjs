// The desktop app's benchmark (scripts/bench-desktop runs it; never part of the tests):
//   1. cold start to first render: the release app launched 5 times on a fresh profile, each
//      reporting when its page first asked for the status (WARD_BENCH=1);
//   2. the proportional set size (PSS) of the whole process tree, WebKit's web and network
//      processes included, after opening a conversation of 10,000 messages;
//   3. the size of the .deb that scripts/package built.
// Each figure is printed beside its goal, as a ratio: below 1.00 meets it.
import { execFileSync, spawn } from "node:child_process";
import { existsSync, readFileSync, readdirSync, statSync } from "node:fs";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { app, makeHome, openApp, repoRoot, startDriver, startRelay } from "./harness.mjs";

const GOAL_START_MS = 1000;
const GOAL_PSS_MB = 250;
const GOAL_DEB_MB = 15;
const MESSAGES = 10_000;
const cli = process.env.WARD_CLI ?? join(repoRoot, "target/release/ward");

function ratio(value, goal) {
  return (value / goal).toFixed(2);
}

async function coldStart() {
  const times = [];
  for (let run = 0; run < 5; run += 1) {
    const home = makeHome(`start-${run}`);
    const child = spawn(app, ["--data-dir", home.dataDir], {
      env: { ...process.env, ...home.env, WARD_BENCH: "1" },
      stdio: ["ignore", "ignore", "pipe"],
    });
    const ms = await new Promise((resolve, reject) => {
      let text = "";
      const timer = setTimeout(() => reject(new Error("no first render within 30 s")), 30000);
      child.stderr.on("data", (chunk) => {
        text += chunk;
        const match = text.match(/first render after (\d+) ms/);
        if (match) {
          clearTimeout(timer);
          resolve(Number(match[1]));
        }
      });
    });
    child.kill("SIGTERM");
    await sleep(500);
    times.push(ms);
  }
  times.sort((a, b) => a - b);
  return { median: times[2], all: times };
}

/** PIDs of `root` and every process below it. */
function tree(root) {
  const children = new Map();
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, "utf8");
      const parent = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
      if (!children.has(parent)) children.set(parent, []);
      children.get(parent).push(Number(entry));
    } catch {
      // Gone meanwhile.
    }
  }
  const found = [root];
  for (let index = 0; index < found.length; index += 1) found.push(...(children.get(found[index]) ?? []));
  return found;
}

function pssKb(pid) {
  try {
    const rollup = readFileSync(`/proc/${pid}/smaps_rollup`, "utf8");
    return Number(rollup.match(/^Pss:\s+(\d+) kB/m)?.[1] ?? 0);
  } catch {
    return 0;
  }
}

function commandOf(pid) {
  try {
    return readFileSync(`/proc/${pid}/comm`, "utf8").trim();
  } catch {
    return "?";
  }
}

async function memoryWithLongConversation() {
  const relay = await startRelay(47643);
  const home = makeHome("bench-pss");
  const driver = await startDriver({ home, port: 4644, keyring: true });
  const env = { ...process.env, ...home.env, DBUS_SESSION_BUS_ADDRESS: driver.busAddress };
  const aliceDir = join(home.root, "alice");
  const ward = (dir, args, input) =>
    execFileSync(cli, ["--data-dir", dir, ...args], { env, input, maxBuffer: 64 << 20 }).toString();
  let browser;
  try {
    ward(aliceDir, ["enroll", "--relay", relay.url, "--invite", relay.invite("Dr Alice Example", "physician")]);
    ward(home.dataDir, ["enroll", "--relay", relay.url, "--invite", relay.invite("Bob Example", "nurse")]);
    const lines = Array.from({ length: MESSAGES }, (_, index) => `Observation ${index + 1}: obs stable, review at handover\n`).join("");
    const sending = Date.now();
    ward(aliceDir, ["send", "--to", "Bob Example", "--lines"], lines);
    console.log(`  sent ${MESSAGES} messages with the CLI in ${((Date.now() - sending) / 1000).toFixed(1)} s`);
    ward(home.dataDir, ["receive"]);

    browser = await openApp({ port: 4644, dataDir: home.dataDir });
    const item = browser.$('[data-testid="chat-item"]');
    await item.waitForExist({ timeout: 60000 });
    await sleep(2000);
    const root = Number(execFileSync("pgrep", ["-f", "-o", `ward-desktop --data-dir ${home.dataDir}`]).toString().trim());
    const treePss = () => {
      const parts = tree(root)
        .map((pid) => ({ pid, name: commandOf(pid), kb: pssKb(pid) }))
        .filter((part) => part.kb > 0);
      return { parts, totalMb: parts.reduce((sum, part) => sum + part.kb, 0) / 1024 };
    };
    const before = treePss();
    const opening = Date.now();
    await item.click();
    await browser.waitUntil(
      async () => (await browser.$('[data-testid="messages"]').getAttribute("data-total")) === String(MESSAGES),
      { timeout: 120000, interval: 100, timeoutMsg: "the conversation did not load" },
    );
    const openMs = Date.now() - opening;
    // Scroll through it, as a clinician would, before measuring.
    for (const top of [0, 400000, 200000, 10 ** 9]) {
      await browser.execute((value) => {
        document.querySelector('[data-testid="messages"]').scrollTop = value;
      }, top);
      await sleep(300);
    }
    await sleep(2000);
    return { openMs, before, after: treePss() };
  } finally {
    await browser?.deleteSession().catch(() => {});
    driver.stop();
    relay.stop();
  }
}

function debSize() {
  const dir = join(repoRoot, "target/packages");
  const deb = existsSync(dir) ? readdirSync(dir).find((name) => /^ward_.*\.deb$/.test(name)) : undefined;
  return deb ? { name: deb, mb: statSync(join(dir, deb)).size / 1_000_000 } : null;
}

console.log(`Desktop app benchmark (${app})`);
const start = await coldStart();
console.log(
  `cold start to first render: median ${start.median} ms of [${start.all.join(", ")}]; goal ${GOAL_START_MS} ms; ratio ${ratio(start.median, GOAL_START_MS)}`,
);
const memory = await memoryWithLongConversation();
console.log(`  opening the ${MESSAGES}-message conversation took ${memory.openMs} ms`);
const parts = (measured) => measured.parts.map((part) => `${part.name} ${(part.kb / 1024).toFixed(1)}`).join(", ");
console.log(`  PSS with the conversation list only: ${memory.before.totalMb.toFixed(1)} MB (${parts(memory.before)})`);
console.log(`  PSS with the conversation open: ${parts(memory.after)}`);
console.log(
  `PSS of the process tree with ${MESSAGES} messages open: ${memory.after.totalMb.toFixed(1)} MB; goal ${GOAL_PSS_MB} MB; ratio ${ratio(memory.after.totalMb, GOAL_PSS_MB)}`,
);
const deb = debSize();
if (deb) console.log(`${deb.name}: ${deb.mb.toFixed(2)} MB; goal ${GOAL_DEB_MB} MB; ratio ${ratio(deb.mb, GOAL_DEB_MB)}`);
else console.log(".deb: none in target/packages; run scripts/package first");
