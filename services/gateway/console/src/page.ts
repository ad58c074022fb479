// What every page shares: its heading, its error and notice areas, and what it releases when left.
import { describeError } from "./api";
import { h } from "./dom";

/** Releases what a page holds (streams, object URLs, the camera) when the user leaves it. */
export type Cleanup = () => void;

export interface PageContext {
  root: HTMLElement;
  /** Aborted when the page is left: pass it to every call so that nothing lands on a page no longer shown. */
  signal: AbortSignal;
  onLeave(cleanup: Cleanup): void;
}

export function pageHeading(title: string, ...extra: (Node | string)[]): HTMLElement {
  return h("div", { class: "page-heading" }, h("h1", { tabindex: "-1" }, title), ...extra);
}

/** An element that announces errors (role=alert) and can be cleared. */
export class ErrorArea {
  readonly element = h("div", { class: "error", role: "alert" });

  show(error: unknown, context = ""): void {
    this.element.textContent = context ? `${context} ${describeError(error)}` : describeError(error);
  }

  showText(text: string): void {
    this.element.textContent = text;
  }

  clear(): void {
    this.element.textContent = "";
  }
}

/** A polite status line of its own (role=status), for outcomes that belong next to a form. */
export class StatusLine {
  readonly element = h("p", { class: "status-line", role: "status" });

  set(text: string): void {
    this.element.textContent = text;
  }
}
