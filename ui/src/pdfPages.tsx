// A PDF rendered from bytes in memory with pdf.js: each page to a canvas, with zoom. Nothing is
// written anywhere; the document is destroyed when the viewer closes.
import { useEffect, useRef, useState } from "react";
import { GlobalWorkerOptions, getDocument, type PDFDocumentProxy } from "pdfjs-dist";
import workerUrl from "pdfjs-dist/build/pdf.worker.min.mjs?url";

GlobalWorkerOptions.workerSrc = workerUrl;

/** Pages past this are not drawn: a report is a few pages, and memory stays bounded. */
const MAX_PAGES = 50;

export function PdfPages({ bytes }: { bytes: Uint8Array }) {
  const [document, setDocument] = useState<PDFDocumentProxy | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [scale, setScale] = useState(1.25);

  useEffect(() => {
    // pdf.js takes the buffer over; it gets a copy so the caller's stays usable.
    const task = getDocument({ data: bytes.slice(), enableXfa: false });
    let live = true;
    task.promise.then(
      (loaded) => {
        if (live) setDocument(loaded);
      },
      () => {
        if (live) setError("This PDF could not be read. It may be damaged.");
      },
    );
    return () => {
      live = false;
      void task.destroy();
    };
  }, [bytes]);

  if (error)
    return (
      <p role="alert" className="error">
        {error}
      </p>
    );
  if (!document) return <p className="detail">Opening the PDF…</p>;
  const pages = Math.min(document.numPages, MAX_PAGES);
  return (
    <div className="pdf">
      <div className="ecg-toolbar" role="toolbar" aria-label="PDF zoom">
        <button type="button" aria-label="Zoom out" onClick={() => setScale((value) => Math.max(0.5, value - 0.25))}>
          −
        </button>
        <span aria-live="polite">{Math.round(scale * 100)} %</span>
        <button type="button" aria-label="Zoom in" onClick={() => setScale((value) => Math.min(3, value + 0.25))}>
          +
        </button>
        <span className="detail" data-testid="pdf-pages">
          {document.numPages} page{document.numPages === 1 ? "" : "s"}
          {document.numPages > MAX_PAGES && ` (the first ${MAX_PAGES} shown; use Save as… for the rest)`}
        </span>
      </div>
      <div className="pdf-scroll" tabIndex={0} aria-label="PDF pages">
        {Array.from({ length: pages }, (_, index) => (
          <PdfPage key={index} document={document} number={index + 1} scale={scale} />
        ))}
      </div>
    </div>
  );
}

function PdfPage({ document, number, scale }: { document: PDFDocumentProxy; number: number; scale: number }) {
  const canvas = useRef<HTMLCanvasElement>(null);
  useEffect(() => {
    let cancelled = false;
    let render: { cancel: () => void } | null = null;
    void document.getPage(number).then((page) => {
      const element = canvas.current;
      if (cancelled || !element) return;
      const viewport = page.getViewport({ scale });
      element.width = Math.ceil(viewport.width);
      element.height = Math.ceil(viewport.height);
      const task = page.render({ canvas: element, viewport });
      render = task;
      task.promise.catch(() => undefined);
    });
    return () => {
      cancelled = true;
      render?.cancel();
    };
  }, [document, number, scale]);
  return <canvas ref={canvas} className="pdf-page" role="img" aria-label={`Page ${number}`} data-testid="pdf-page" />;
}
