// Face thumbnails from GetFaceCrop, fetched a few at a time and kept as object URLs for the page's life.
import { api, Code, errorCode } from "./api";
import { h } from "./dom";
import { bytesBlob, type ObjectUrls } from "./images";

const MAX_CONCURRENT = 4;
const THUMBNAIL_SIDE = 160;

export class FaceThumbnails {
  private readonly urls = new Map<bigint, Promise<string | null>>();
  private readonly waiting: (() => void)[] = [];
  private running = 0;
  /** Set when the key may not read faces (enroll scope is needed): every thumbnail is a placeholder then. */
  denied = false;

  constructor(
    private readonly collection: string,
    private readonly objectUrls: ObjectUrls,
    private readonly signal: AbortSignal,
    private readonly onDenied: () => void,
  ) {}

  /** A figure that shows a placeholder with the subject's initials until the crop arrives, or for good. */
  element(faceId: bigint, alt: string, initials: string): HTMLElement {
    const placeholder = h(
      "span",
      { class: "thumb-placeholder", role: "img", "aria-label": `${alt} (no thumbnail)` },
      initials,
    );
    const frame = h("span", { class: "thumb" }, placeholder);
    void this.url(faceId).then((url) => {
      if (url) frame.replaceChildren(h("img", { src: url, alt, width: 96, height: 96, decoding: "async" }));
    });
    return frame;
  }

  forget(faceId: bigint): void {
    void this.urls.get(faceId)?.then((url) => url && this.objectUrls.revoke(url));
    this.urls.delete(faceId);
  }

  private url(faceId: bigint): Promise<string | null> {
    let url = this.urls.get(faceId);
    if (!url) {
      url = this.fetch(faceId);
      this.urls.set(faceId, url);
    }
    return url;
  }

  private async fetch(faceId: bigint): Promise<string | null> {
    await this.slot();
    try {
      if (this.denied || this.signal.aborted) return null;
      const crop = await api.faces.getFaceCrop(
        { collection: this.collection, faceId, maxSide: THUMBNAIL_SIDE },
        { signal: this.signal },
      );
      return this.objectUrls.of(bytesBlob(crop.image, crop.mimeType || undefined));
    } catch (failure) {
      if (errorCode(failure) === Code.PermissionDenied && !this.denied) {
        this.denied = true;
        this.onDenied();
      }
      // A failed crop (the face deleted meanwhile, say) may be fetched again on the next render.
      this.urls.delete(faceId);
      return null;
    } finally {
      this.running -= 1;
      this.waiting.shift()?.();
    }
  }

  private slot(): Promise<void> {
    this.running += 1;
    if (this.running <= MAX_CONCURRENT) return Promise.resolve();
    return new Promise((resolve) => this.waiting.push(resolve));
  }
}

export function initials(name: string): string {
  const words = name.split(/[\s_.-]+/).filter(Boolean);
  return (words.length > 1 ? words[0][0] + words[1][0] : name.slice(0, 2)).toUpperCase();
}
