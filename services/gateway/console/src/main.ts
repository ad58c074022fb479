// The console's shell: hash routes (the gateway serves one index.html), sign-in and sign-out, page lifecycles.
import "./styles.css";
import { forgetKey, storedKey } from "./api";
import { h } from "./dom";
import type { Cleanup, PageContext } from "./page";
import { auditPage } from "./pages/audit";
import { collectionsPage } from "./pages/collections";
import { jobsPage } from "./pages/jobs";
import { playgroundPage } from "./pages/playground";
import { signInPage } from "./pages/signin";
import { statusPage } from "./pages/status";
import { subjectsPage } from "./pages/subjects";

interface Route {
  /** The nav entry it belongs to. */
  section: string;
  title: string;
  render: (context: PageContext) => void;
}

function route(hash: string): Route | null {
  const [name, ...rest] = hash.replace(/^#\/?/, "").split("/");
  const argument = decodeURIComponent(rest.join("/"));
  switch (name) {
    case "":
    case "collections":
      return { section: "collections", title: "Collections", render: collectionsPage };
    case "subjects":
      if (!argument) return null;
      return {
        section: "collections",
        title: `Subjects of ${argument}`,
        render: (context) => subjectsPage(context, argument),
      };
    case "playground":
      return { section: "playground", title: "Playground", render: playgroundPage };
    case "audit":
      return { section: "audit", title: "Audit trail", render: auditPage };
    case "jobs":
      return { section: "jobs", title: "Jobs", render: jobsPage };
    case "status":
      return { section: "status", title: "Stack status", render: statusPage };
    default:
      return null;
  }
}

const main = document.getElementById("main") as HTMLElement;
const nav = document.getElementById("site-nav") as HTMLElement;
const signOutButton = document.getElementById("sign-out") as HTMLButtonElement;
let leaveCurrentPage: Cleanup = () => {};
let firstRender = true;

function startPage(): PageContext {
  leaveCurrentPage();
  const controller = new AbortController();
  const cleanups: Cleanup[] = [];
  leaveCurrentPage = () => {
    controller.abort();
    for (const cleanup of cleanups.splice(0)) cleanup();
  };
  main.replaceChildren();
  return { root: main, signal: controller.signal, onLeave: (cleanup) => cleanups.push(cleanup) };
}

function render(): void {
  const context = startPage();
  const signedIn = storedKey() !== null;
  nav.hidden = !signedIn;
  signOutButton.hidden = !signedIn;
  if (!signedIn) {
    document.title = "Sign in · Argus console";
    signInPage(context, render);
    return;
  }
  const current = route(window.location.hash);
  for (const link of nav.querySelectorAll<HTMLAnchorElement>("a[data-route]")) {
    if (current && link.dataset.route === current.section) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  if (!current) {
    document.title = "Not found · Argus console";
    main.append(
      h("h1", { tabindex: "-1" }, "No such page"),
      h(
        "p",
        {},
        "This address names no page of the console. ",
        h("a", { href: "#/collections" }, "Go to the collections."),
      ),
    );
  } else {
    document.title = `${current.title} · Argus console`;
    current.render(context);
  }
  // Moving focus to the new page's heading tells screen reader users that the page changed.
  if (!firstRender) main.querySelector<HTMLElement>("h1")?.focus();
  firstRender = false;
}

signOutButton.addEventListener("click", () => {
  forgetKey();
  // Without a hashchange event: render once, here.
  history.replaceState(null, "", window.location.pathname + window.location.search);
  render();
});

// The skip link's target is an element, not a route: handled here so the hash stays a route.
document.querySelector<HTMLAnchorElement>(".skip-link")?.addEventListener("click", (event) => {
  event.preventDefault();
  main.focus();
});

window.addEventListener("hashchange", render);
render();
