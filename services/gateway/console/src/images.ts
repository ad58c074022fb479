// Photos in the browser: file bytes, object URLs, the webcam, and face boxes drawn over an image.
import type { BoundingBox } from "./gen/argus/common/v1/common_pb";
import { h, svg } from "./dom";

export async function fileBytes(file: Blob): Promise<Uint8Array> {
  return new Uint8Array(await file.arrayBuffer());
}

/** The MIME type of encoded image bytes, from their signature (the Image message carries none). */
export function imageMimeType(bytes: Uint8Array): string {
  if (bytes[0] === 0xff && bytes[1] === 0xd8) return "image/jpeg";
  if (bytes[0] === 0x89 && bytes[1] === 0x50 && bytes[2] === 0x4e && bytes[3] === 0x47) return "image/png";
  const ascii = (from: number, to: number) => String.fromCharCode(...bytes.subarray(from, to));
  if (ascii(0, 4) === "RIFF" && ascii(8, 12) === "WEBP") return "image/webp";
  if (ascii(0, 2) === "BM") return "image/bmp";
  return "application/octet-stream";
}

export function bytesBlob(bytes: Uint8Array, mimeType = imageMimeType(bytes)): Blob {
  // A copy into a plain ArrayBuffer: Blob does not take views of shared or resizable buffers.
  return new Blob([bytes.slice()], { type: mimeType });
}

/** Object URLs a page made, revoked together when the page goes. */
export class ObjectUrls {
  private readonly urls = new Set<string>();

  of(blob: Blob): string {
    const url = URL.createObjectURL(blob);
    this.urls.add(url);
    return url;
  }

  revoke(url: string): void {
    if (this.urls.delete(url)) URL.revokeObjectURL(url);
  }

  revokeAll(): void {
    for (const url of this.urls) URL.revokeObjectURL(url);
    this.urls.clear();
  }
}

export type BoxTone = "match" | "no-match" | "unknown" | "candidate";

export interface OverlayBox {
  box: BoundingBox;
  label: string;
  tone: BoxTone;
}

/**
 * The image with its boxes drawn over it in an SVG whose viewBox is the image's own pixel size, so boxes given in
 * source pixels land where they belong at any displayed size. The SVG is decoration: callers list the same
 * findings as text for screen readers.
 */
export function annotatedImage(url: string, alt: string, boxes: OverlayBox[]): HTMLElement {
  const image = h("img", { src: url, alt });
  const overlay = svg("svg", { class: "overlay", "aria-hidden": "true", focusable: "false" });
  const stage = h("div", { class: "stage" }, image, overlay);
  const draw = () => {
    const width = image.naturalWidth;
    const height = image.naturalHeight;
    if (!width || !height) return;
    overlay.setAttribute("viewBox", `0 0 ${width} ${height}`);
    overlay.setAttribute("preserveAspectRatio", "none");
    const stroke = Math.max(2, Math.round(Math.max(width, height) / 250));
    const fontSize = Math.max(12, Math.round(Math.max(width, height) / 32));
    overlay.replaceChildren(
      ...boxes.map(({ box, label, tone }) => {
        const boxWidth = box.x2 - box.x1;
        const labelY = box.y1 > fontSize * 1.4 ? box.y1 - fontSize * 0.4 : box.y2 + fontSize * 1.1;
        // A label that would run off the right edge ends at the box's right side instead (width estimated).
        const runsOff = box.x1 + label.length * fontSize * 0.62 > width;
        const labelPlace = runsOff
          ? { x: Math.min(width, box.x2), "text-anchor": "end" }
          : { x: Math.max(0, box.x1), "text-anchor": "start" };
        return svg(
          "g",
          { class: `box box-${tone}` },
          svg("rect", { x: box.x1, y: box.y1, width: boxWidth, height: box.y2 - box.y1, "stroke-width": stroke }),
          label
            ? svg("text", { ...labelPlace, y: labelY, "font-size": fontSize, "stroke-width": stroke * 1.5 }, label)
            : null,
        );
      }),
    );
  };
  if (image.complete) draw();
  image.addEventListener("load", draw);
  return stage;
}

/** Whether the browser can see a camera at all (labels need permission; the device kinds do not). */
export async function hasCamera(): Promise<boolean> {
  if (!navigator.mediaDevices?.enumerateDevices || !navigator.mediaDevices.getUserMedia) return false;
  try {
    const devices = await navigator.mediaDevices.enumerateDevices();
    return devices.some((device) => device.kind === "videoinput");
  } catch {
    return false;
  }
}

/** A live camera preview that captures frames as JPEG. */
export class Camera {
  readonly video = h("video", { autoplay: true, playsinline: true, muted: true, class: "camera-preview" });
  private stream: MediaStream | null = null;

  async start(): Promise<void> {
    this.stream = await navigator.mediaDevices.getUserMedia({ video: { width: { ideal: 1280 } }, audio: false });
    this.video.srcObject = this.stream;
    await this.video.play();
  }

  async capture(): Promise<Blob> {
    const canvas = h("canvas", { width: this.video.videoWidth, height: this.video.videoHeight });
    const context = canvas.getContext("2d");
    if (!context || !canvas.width) throw new Error("The camera has no picture yet.");
    context.drawImage(this.video, 0, 0);
    return new Promise((resolve, reject) =>
      canvas.toBlob(
        (blob) => (blob ? resolve(blob) : reject(new Error("Could not encode the frame."))),
        "image/jpeg",
        0.92,
      ),
    );
  }

  stop(): void {
    for (const track of this.stream?.getTracks() ?? []) track.stop();
    this.stream = null;
    this.video.srcObject = null;
  }
}
