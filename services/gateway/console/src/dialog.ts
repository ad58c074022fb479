// Modal dialogs on the native <dialog>: the rest of the page is inert while one is open, Escape closes it, Tab
// stays inside it, and focus returns to where it was.
import { describeError } from "./api";
import { h, uniqueId } from "./dom";

const FOCUSABLE = "button, [href], input, select, textarea, [tabindex]:not([tabindex='-1'])";

function keepTabInside(dialog: HTMLDialogElement, event: KeyboardEvent): void {
  if (event.key !== "Tab") return;
  const focusable = [...dialog.querySelectorAll<HTMLElement>(FOCUSABLE)].filter((el) => !el.hasAttribute("disabled"));
  if (focusable.length === 0) return;
  const first = focusable[0];
  const last = focusable[focusable.length - 1];
  const active = document.activeElement;
  if (event.shiftKey && (active === first || active === dialog)) {
    event.preventDefault();
    last.focus();
  } else if (!event.shiftKey && active === last) {
    event.preventDefault();
    first.focus();
  }
}

export interface DialogOptions {
  title: string;
  body: Node | string;
  confirmLabel: string;
  danger?: boolean;
  /** Called on confirm; a thrown error is shown in the dialog, which stays open. */
  onConfirm?: () => Promise<void> | void;
}

/** Opens a modal dialog; resolves true when confirmed, false when cancelled (button or Escape). */
export function openDialog(options: DialogOptions): Promise<boolean> {
  const titleId = uniqueId("dialog-title");
  const bodyId = uniqueId("dialog-body");
  const error = h("p", { class: "error", role: "alert" });
  const cancel = h("button", { type: "button", class: "secondary" }, "Cancel");
  const confirm = h("button", { type: "submit", class: options.danger ? "danger" : "" }, options.confirmLabel);
  const form = h(
    "form",
    { method: "dialog" },
    h("h2", { id: titleId }, options.title),
    h("div", { id: bodyId, class: "dialog-body" }, options.body),
    error,
    h("div", { class: "actions" }, cancel, confirm),
  );
  const dialog = h("dialog", { "aria-labelledby": titleId, "aria-describedby": bodyId, tabindex: "-1" }, form);
  const opener = document.activeElement instanceof HTMLElement ? document.activeElement : null;
  document.body.append(dialog);

  return new Promise((resolve) => {
    const close = (confirmed: boolean) => {
      dialog.close();
      dialog.remove();
      opener?.focus();
      resolve(confirmed);
    };
    dialog.addEventListener("keydown", (event) => keepTabInside(dialog, event));
    dialog.addEventListener("cancel", (event) => {
      event.preventDefault();
      close(false);
    });
    cancel.addEventListener("click", () => close(false));
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      error.textContent = "";
      confirm.disabled = true;
      try {
        await options.onConfirm?.();
        close(true);
      } catch (failure) {
        error.textContent = describeError(failure);
        confirm.disabled = false;
      }
    });
    dialog.showModal();
    dialog.focus();
  });
}
