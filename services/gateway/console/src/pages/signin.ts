import { clientsWithKey, Code, errorCode, errorMessage, storeKey } from "../api";
import { field, h } from "../dom";
import { ErrorArea, pageHeading, type PageContext } from "../page";

/** Asks for an API key and keeps it once the gateway accepts it. */
export function signInPage({ root }: PageContext, onSignedIn: () => void): void {
  const keyInput = h("input", {
    type: "password",
    name: "api-key",
    autocomplete: "current-password",
    required: true,
    spellcheck: "false",
  });
  const submit = h("button", { type: "submit" }, "Sign in");
  const error = new ErrorArea();
  const form = h(
    "form",
    { class: "card narrow", "aria-label": "Sign in" },
    field(
      "API key",
      keyInput,
      "The key `argus keys create` printed. It stays in this tab only and is sent to this server.",
    ),
    error.element,
    h("div", { class: "actions" }, submit),
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const key = keyInput.value.trim();
    if (!key) return;
    error.clear();
    submit.disabled = true;
    submit.textContent = "Signing in…";
    try {
      // A cheap call that every face-database key may make proves the key.
      await clientsWithKey(key).faces.listCollections({});
      storeKey(key);
      onSignedIn();
    } catch (failure) {
      const code = errorCode(failure);
      if (code === Code.PermissionDenied) {
        // A valid key of another scope (jobs only, say): its pages will say what it may not do.
        storeKey(key);
        onSignedIn();
        return;
      }
      if (code === Code.Unauthenticated) {
        error.showText(`That API key was not accepted: ${errorMessage(failure)}`);
      } else {
        error.show(failure, "Could not check the key.");
      }
      keyInput.focus();
    } finally {
      submit.disabled = false;
      submit.textContent = "Sign in";
    }
  });
  root.append(
    pageHeading("Sign in"),
    h("p", {}, "Argus needs an API key for this console. Any active key works; each page shows what the key may do."),
    form,
  );
  keyInput.focus();
}
