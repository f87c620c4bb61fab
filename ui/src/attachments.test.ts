import { describe, expect, it } from "vitest";
import { formatSize, viewerFor } from "./attachments";
import { attachmentLimit } from "./messenger";

describe("attachments", () => {
  it("choose the viewer by media type, and by name for ECG files", () => {
    expect(viewerFor("image/png", "wound.png")).toBe("image");
    expect(viewerFor("application/pdf", "report.pdf")).toBe("pdf");
    expect(viewerFor("application/dicom", "ecg.dcm")).toBe("ecg");
    expect(viewerFor("application/octet-stream", "ECG.DCM")).toBe("ecg");
    expect(viewerFor("application/xml", "aecg.xml")).toBe("ecg");
    // SVG can carry script; it is offered for saving, not shown.
    expect(viewerFor("image/svg+xml", "chart.svg")).toBeNull();
    expect(viewerFor("application/zip", "notes.zip")).toBeNull();
  });

  it("read the organization's limit from the settings in force", () => {
    expect(attachmentLimit([{ key: "attachment_max_mb", value: "25 MB", managed: true }])).toBe(25);
    expect(attachmentLimit([])).toBeNull();
  });

  it("say sizes the way people read them", () => {
    expect(formatSize(512)).toBe("512 B");
    expect(formatSize(291_088)).toBe("291 kB");
    expect(formatSize(52_428_800)).toBe("52.4 MB");
  });
});
