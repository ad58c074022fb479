import { api } from "../api";
import { h, replaceChildren } from "../dom";
import type { ServiceState } from "../gen/argus/gateway/v1/gateway_pb";
import { ErrorArea, pageHeading, type PageContext } from "../page";

const COLUMNS = ["Service", "Address", "Health", "Models (execution provider, precision)", "Version", "Auth"];

function row(service: ServiceState): HTMLTableRowElement {
  const status = service.status;
  const healthClass = service.health === "SERVING" ? "health-ok" : "health-bad";
  return h(
    "tr",
    {},
    h("th", { scope: "row" }, service.name),
    h("td", {}, h("code", {}, service.address)),
    h(
      "td",
      {},
      h("span", { class: `badge ${healthClass}` }, service.health),
      service.detail ? h("div", { class: "muted" }, service.detail) : null,
    ),
    h(
      "td",
      {},
      status?.models.length
        ? h(
            "ul",
            { class: "plain" },
            status.models.map((model) =>
              h("li", {}, h("code", {}, model.ref), ` — ${model.provider || "no provider"}${model.precision ? `, ${model.precision}` : ""}`),
            ),
          )
        : "—",
    ),
    h("td", {}, status?.version || "—"),
    h("td", {}, status?.auth || "—"),
  );
}

/** What the gateway forwards to: each service's health, models and their execution providers. */
export function statusPage({ root, signal }: PageContext): void {
  const error = new ErrorArea();
  const tableArea = h("div", { class: "table-wrap" }, h("p", { class: "muted" }, "Asking every service…"));
  const checked = h("p", { class: "muted", "aria-live": "polite" });

  async function load(): Promise<void> {
    try {
      const { services } = await api.gateway.getStackStatus({}, { signal });
      error.clear();
      const serving = services.filter((service) => service.health === "SERVING").length;
      checked.textContent = `${serving} of ${services.length} services serving, checked at ${new Date().toLocaleTimeString()}.`;
      replaceChildren(
        tableArea,
        h(
          "table",
          {},
          h("caption", { class: "visually-hidden" }, "Services of the stack"),
          h(
            "thead",
            {},
            h(
              "tr",
              {},
              COLUMNS.map((title) => h("th", { scope: "col" }, title)),
            ),
          ),
          h("tbody", {}, services.map(row)),
        ),
      );
    } catch (failure) {
      error.show(failure, "Could not read the stack's status.");
      replaceChildren(tableArea);
    }
  }

  root.append(
    pageHeading(
      "Stack status",
      h("button", { type: "button", class: "secondary", onclick: () => void load() }, "Refresh"),
    ),
    error.element,
    checked,
    tableArea,
  );
  void load();
}
