// WebKit writes localStorage, IndexedDB and the Cache API to disk as plain SQLite files, so the UI
// must keep everything in memory. The app also runs its webview ephemeral (see src-tauri/src/lib.rs);
// this guard stops the UI code from relying on web storage in the first place.
import { describe, expect, it } from "vitest";
import { readdirSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";

function sources(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) return sources(path);
    return /\.(ts|tsx)$/.test(name) && !/\.test\.tsx?$/.test(name) ? [path] : [];
  });
}

describe("the UI keeps nothing in web storage", () => {
  it("never touches localStorage, sessionStorage, IndexedDB or the Cache API", () => {
    const files = sources(join(__dirname));
    expect(files.length).toBeGreaterThan(2);
    for (const file of files) {
      const text = readFileSync(file, "utf8");
      expect(text, file).not.toMatch(/\b(localStorage|sessionStorage|indexedDB|caches\.|openDatabase)\b/);
    }
  });
});
