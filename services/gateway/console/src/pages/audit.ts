import { timestampDate, timestampFromDate } from "@bufbuild/protobuf/wkt";
import { api } from "../api";
import { field, h, replaceChildren, uniqueId } from "../dom";
import { dateTime, decimal, plural } from "../format";
import type { AuditEvent } from "../gen/argus/facedb/v1/facedb_pb";
import { ErrorArea, pageHeading, type PageContext } from "../page";

const PAGE_SIZE = 50;
// The values AuditEvent documents, offered as choices; the server takes any.
const ACTIONS = [
  "verify",
  "identify",
  "enroll",
  "confirm_decision",
  "reject_decision",
  "delete_face",
  "delete_subject",
  "delete_collection",
  "change_profile",
  "update_collection",
  "denied",
];
const DECISIONS = [
  "match",
  "no_match",
  "no_face",
  "spoof",
  "low_quality",
  "identified",
  "unknown",
  "done",
  "no_key",
  "malformed_key",
  "unknown_key",
  "wrong_secret",
  "revoked_key",
  "no_active_key",
  "scope",
  "collection",
];
const COLUMNS = [
  "Time",
  "Action",
  "Decision",
  "Collection",
  "Subject",
  "Similarity",
  "Threshold",
  "Key",
  "Count",
  "Detail",
];

function localTime(input: HTMLInputElement) {
  // datetime-local holds a wall-clock time of the browser's zone; Date reads it so.
  return input.value ? timestampFromDate(new Date(input.value)) : undefined;
}

function row(event: AuditEvent): HTMLTableRowElement {
  const key = event.keyName && event.keyId ? `${event.keyName} (${event.keyId})` : event.keyName || event.keyId || "—";
  return h(
    "tr",
    {},
    h(
      "td",
      {},
      h(
        "time",
        { datetime: event.occurredAt ? timestampDate(event.occurredAt).toISOString() : null },
        dateTime(event.occurredAt),
      ),
    ),
    h("td", {}, event.action),
    h("td", {}, event.decision || "—"),
    h("td", {}, event.collection || "—"),
    h("td", {}, event.subjectId || "—"),
    h("td", { class: "number" }, decimal(event.similarity)),
    h("td", { class: "number" }, decimal(event.threshold)),
    h("td", {}, key),
    h("td", { class: "number" }, String(event.count)),
    h("td", { class: "detail" }, event.detail || (event.decisionId ? `decision ${event.decisionId}` : "")),
  );
}

/** The audit trail of decisions, enrollments and deletions, filtered and paged. */
export function auditPage({ root, signal }: PageContext): void {
  const error = new ErrorArea();
  const collectionSelect = h("select", {}, h("option", { value: "" }, "Every collection"));
  const keyInput = h("input", { type: "text", autocomplete: "off", placeholder: "name or id" });
  const decisionList = uniqueId("decisions");
  const decisionInput = h("input", { type: "text", list: decisionList, autocomplete: "off" });
  const actionSelect = h(
    "select",
    {},
    h("option", { value: "" }, "Every action"),
    ACTIONS.map((action) => h("option", { value: action }, action)),
  );
  const sinceInput = h("input", { type: "datetime-local", step: 1 });
  const untilInput = h("input", { type: "datetime-local", step: 1 });
  const tableArea = h("div", { class: "table-wrap" });
  const summary = h("p", { class: "muted", "aria-live": "polite" });
  const previousButton = h("button", { type: "button", class: "secondary", disabled: true }, "Newer events");
  const nextButton = h("button", { type: "button", class: "secondary", disabled: true }, "Older events");
  let pageTokens = [""];
  let pageIndex = 0;

  async function load(): Promise<void> {
    summary.textContent = "Loading events…";
    try {
      const answer = await api.faces.listAuditEvents(
        {
          collection: collectionSelect.value,
          key: keyInput.value.trim(),
          decision: decisionInput.value.trim(),
          action: actionSelect.value,
          since: localTime(sinceInput),
          until: localTime(untilInput),
          pageSize: PAGE_SIZE,
          pageToken: pageTokens[pageIndex],
        },
        { signal },
      );
      error.clear();
      if (answer.nextPageToken) pageTokens[pageIndex + 1] = answer.nextPageToken;
      else pageTokens = pageTokens.slice(0, pageIndex + 1);
      previousButton.disabled = pageIndex === 0;
      nextButton.disabled = !answer.nextPageToken;
      summary.textContent =
        answer.events.length === 0
          ? "No events match these filters."
          : `Page ${pageIndex + 1}: ${plural(answer.events.length, "event")}, newest first.`;
      replaceChildren(
        tableArea,
        answer.events.length
          ? h(
              "table",
              {},
              h("caption", { class: "visually-hidden" }, "Audit events, newest first"),
              h(
                "thead",
                {},
                h(
                  "tr",
                  {},
                  COLUMNS.map((title) => h("th", { scope: "col" }, title)),
                ),
              ),
              h("tbody", {}, answer.events.map(row)),
            )
          : null,
      );
    } catch (failure) {
      summary.textContent = "";
      error.show(failure, "Could not read the audit trail.");
    }
  }

  const form = h(
    "form",
    { class: "card filters", "aria-label": "Audit filters" },
    h(
      "div",
      { class: "form-row" },
      field("Collection", collectionSelect),
      field("Key", keyInput),
      field("Decision", decisionInput),
      field("Action", actionSelect),
      field("Since", sinceInput),
      field("Until", untilInput),
    ),
    h(
      "datalist",
      { id: decisionList },
      DECISIONS.map((decision) => h("option", { value: decision })),
    ),
    h(
      "div",
      { class: "actions" },
      h("button", { type: "submit" }, "Apply filters"),
      h("button", { type: "reset", class: "secondary" }, "Clear filters"),
    ),
  );
  const restart = () => {
    pageTokens = [""];
    pageIndex = 0;
    void load();
  };
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    restart();
  });
  // After the reset has emptied the fields.
  form.addEventListener("reset", () => window.setTimeout(restart));
  previousButton.addEventListener("click", () => {
    pageIndex = Math.max(0, pageIndex - 1);
    void load();
  });
  nextButton.addEventListener("click", () => {
    pageIndex += 1;
    void load();
  });

  root.append(
    pageHeading("Audit trail"),
    form,
    error.element,
    summary,
    tableArea,
    h("nav", { class: "pager", "aria-label": "Audit pages" }, previousButton, nextButton),
  );
  void (async () => {
    try {
      const { collections } = await api.faces.listCollections({}, { signal });
      collectionSelect.append(...collections.map((c) => h("option", { value: c.name }, c.name)));
    } catch {
      // The audit call itself will say what this key may not do.
    }
  })();
  void load();
}
