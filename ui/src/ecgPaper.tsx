// An ECG drawn as standard paper: 25 mm/s and 10 mm/mV, 1 mm minor and 5 mm major grid, one row
// per lead with its label, and zoom. The samples come decoded from ward-client; nothing is kept.
import { useEffect, useRef, useState } from "react";
import type { EcgView } from "./bindings";

export const MM_PER_SECOND = 25;
export const MM_PER_MILLIVOLT = 10;
/** Each lead's row spans ±1.5 mV; what goes past it is clipped to the row, as on paper. */
const ROW_MM = 30;
const LABEL_MM = 12;
/** Pixels per millimetre at 100 %: a 10 s strip is 1000 px wide. */
const BASE_PX_PER_MM = 4;
const ZOOMS = [0.5, 0.75, 1, 1.5, 2, 2.5];

export function EcgPaper({ recording }: { recording: EcgView }) {
  const canvas = useRef<HTMLCanvasElement>(null);
  const [zoom, setZoom] = useState(1);
  const [drawn, setDrawn] = useState(0);
  const samples = Math.max(0, ...recording.leads.map((lead) => lead.microvolts.length));
  const seconds = samples / recording.sampleRateHz;

  useEffect(() => {
    const element = canvas.current;
    if (!element) return;
    setDrawn(drawPaper(element, recording, BASE_PX_PER_MM * zoom));
  }, [recording, zoom]);

  const step = (direction: number) => {
    const index = ZOOMS.indexOf(zoom) + direction;
    const next = ZOOMS[Math.min(ZOOMS.length - 1, Math.max(0, index))];
    if (next !== undefined) setZoom(next);
  };

  return (
    <div className="ecg">
      <div className="ecg-toolbar" role="toolbar" aria-label="ECG zoom">
        <button type="button" onClick={() => step(-1)} disabled={zoom === ZOOMS[0]} aria-label="Zoom out">
          −
        </button>
        <span aria-live="polite" data-testid="ecg-zoom">
          {Math.round(zoom * 100)} %
        </span>
        <button type="button" onClick={() => step(1)} disabled={zoom === ZOOMS[ZOOMS.length - 1]} aria-label="Zoom in">
          +
        </button>
        <span className="detail">
          {MM_PER_SECOND} mm/s · {MM_PER_MILLIVOLT} mm/mV · {recording.leads.length} leads · {seconds.toFixed(1)} s at{" "}
          {recording.sampleRateHz} Hz
        </span>
      </div>
      <div className="ecg-scroll" tabIndex={0} aria-label="ECG tracing; scroll to see all of it">
        <canvas
          ref={canvas}
          role="img"
          aria-label={`ECG, ${recording.leads.length} leads: ${recording.leads.map((lead) => lead.label).join(", ")}`}
          data-testid="ecg-canvas"
          data-leads={recording.leads.length}
          data-labels={recording.leads.map((lead) => lead.label).join(",")}
          data-drawn-leads={drawn}
          data-row-px={ROW_MM * BASE_PX_PER_MM * zoom}
        />
      </div>
    </div>
  );
}

/** Draws the grid, labels and traces; returns how many leads got a trace. */
export function drawPaper(canvas: HTMLCanvasElement, recording: EcgView, pxPerMm: number): number {
  const samples = Math.max(0, ...recording.leads.map((lead) => lead.microvolts.length));
  const widthMm = LABEL_MM + (samples / recording.sampleRateHz) * MM_PER_SECOND;
  const heightMm = ROW_MM * recording.leads.length;
  canvas.width = Math.ceil(widthMm * pxPerMm);
  canvas.height = Math.ceil(heightMm * pxPerMm);
  canvas.style.width = `${canvas.width}px`;
  canvas.style.height = `${canvas.height}px`;
  const context = canvas.getContext("2d");
  if (!context) return 0;
  context.fillStyle = "#fffafa";
  context.fillRect(0, 0, canvas.width, canvas.height);
  // The grid: every millimetre thin, every fifth thicker.
  for (let mm = 0; mm <= Math.max(widthMm, heightMm); mm += 1) {
    const major = mm % 5 === 0;
    context.strokeStyle = major ? "#e8a0a0" : "#f6d6d6";
    context.lineWidth = major ? 1 : 0.5;
    const at = Math.round(mm * pxPerMm) + 0.5;
    if (mm <= widthMm) {
      context.beginPath();
      context.moveTo(at, 0);
      context.lineTo(at, canvas.height);
      context.stroke();
    }
    if (mm <= heightMm) {
      context.beginPath();
      context.moveTo(0, at);
      context.lineTo(canvas.width, at);
      context.stroke();
    }
  }
  const pxPerSample = (MM_PER_SECOND * pxPerMm) / recording.sampleRateHz;
  const pxPerMicrovolt = (MM_PER_MILLIVOLT * pxPerMm) / 1000;
  let drawn = 0;
  recording.leads.forEach((lead, row) => {
    const top = row * ROW_MM * pxPerMm;
    const baseline = top + (ROW_MM / 2) * pxPerMm;
    context.fillStyle = "#222";
    context.font = `${Math.max(10, 3.5 * pxPerMm)}px system-ui, sans-serif`;
    context.fillText(lead.label, 1.5 * pxPerMm, top + 5 * pxPerMm);
    if (lead.microvolts.length === 0) return;
    context.save();
    context.beginPath();
    context.rect(LABEL_MM * pxPerMm, top, canvas.width, ROW_MM * pxPerMm);
    context.clip();
    context.strokeStyle = "#111";
    context.lineWidth = Math.max(1, pxPerMm / 4);
    context.lineJoin = "round";
    context.beginPath();
    const left = LABEL_MM * pxPerMm;
    lead.microvolts.forEach((microvolts, index) => {
      const x = left + index * pxPerSample;
      const y = baseline - microvolts * pxPerMicrovolt;
      if (index === 0) context.moveTo(x, y);
      else context.lineTo(x, y);
    });
    context.stroke();
    context.restore();
    drawn += 1;
  });
  return drawn;
}
