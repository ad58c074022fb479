import { api } from "../api";
import { openDialog } from "../dialog";
import { debounce, field, h, replaceChildren } from "../dom";
import { enrollForm } from "../enroll";
import { plural } from "../format";
import type { Face, Subject } from "../gen/argus/facedb/v1/facedb_pb";
import { ObjectUrls } from "../images";
import { ErrorArea, pageHeading, StatusLine, type PageContext } from "../page";
import { FaceThumbnails, initials } from "../thumbnails";

const PAGE_SIZE = 24;
const SEARCH_DELAY_MS = 300;

/** A collection's subjects as cards with face thumbnails: search, paging, enroll, delete. */
export function subjectsPage({ root, signal, onLeave }: PageContext, collection: string): void {
  const objectUrls = new ObjectUrls();
  const error = new ErrorArea();
  const status = new StatusLine();
  const notice = h("p", { class: "notice", hidden: true });
  const thumbnails = new FaceThumbnails(collection, objectUrls, signal, () => {
    notice.hidden = false;
    notice.textContent = "Thumbnails need a key with enroll scope: this key may not read the gallery's faces.";
  });
  const searchInput = h("input", { type: "search", autocomplete: "off", placeholder: "ID or name" });
  const summary = h("p", { class: "muted", "aria-live": "polite" });
  const grid = h("ul", { class: "subject-grid", "aria-label": `Subjects of ${collection}` });
  const previousButton = h("button", { type: "button", class: "secondary", disabled: true }, "Previous page");
  const nextButton = h("button", { type: "button", class: "secondary", disabled: true }, "Next page");
  const pageLabel = h("span", { class: "muted" });
  // pageTokens[i] fetches page i; the first page needs none.
  let pageTokens = [""];
  let pageIndex = 0;
  let latestRequest = 0;

  async function load(): Promise<void> {
    const request = ++latestRequest;
    const query = searchInput.value.trim();
    try {
      const answer = await api.faces.listSubjects(
        { collection, pageSize: PAGE_SIZE, pageToken: pageTokens[pageIndex], query },
        { signal },
      );
      // A slower answer to an older search must not overwrite a newer one.
      if (request !== latestRequest) return;
      error.clear();
      if (answer.nextPageToken) pageTokens[pageIndex + 1] = answer.nextPageToken;
      else pageTokens = pageTokens.slice(0, pageIndex + 1);
      previousButton.disabled = pageIndex === 0;
      nextButton.disabled = !answer.nextPageToken;
      const pages = Math.max(1, Math.ceil(Number(answer.total) / PAGE_SIZE));
      pageLabel.textContent = `Page ${pageIndex + 1} of ${pages}`;
      summary.textContent = query
        ? `${plural(answer.total, "subject")} match “${query}”.`
        : `${plural(answer.total, "subject")} in ${collection}.`;
      replaceChildren(grid, answer.subjects.map(card));
    } catch (failure) {
      if (request !== latestRequest) return;
      error.show(failure, "Could not list the subjects.");
    }
  }

  function card(subject: Subject): HTMLLIElement {
    const name = subject.displayName || subject.subjectId;
    const headingId = `subject-${subject.subjectId.replace(/[^\w-]/g, "_")}`;
    return h(
      "li",
      {},
      h(
        "article",
        { class: "subject-card", "aria-labelledby": headingId },
        h("h3", { id: headingId }, name),
        h(
          "p",
          { class: "muted" },
          subject.displayName ? `ID ${subject.subjectId} · ` : "",
          plural(subject.faces.length, "face"),
        ),
        h(
          "ul",
          { class: "faces", "aria-label": `Faces of ${name}` },
          subject.faces.map((face, index) => faceItem(subject, face, index)),
        ),
        h(
          "button",
          {
            type: "button",
            class: "danger small",
            "aria-label": `Delete subject ${subject.subjectId}`,
            onclick: () => void deleteSubject(subject),
          },
          "Delete subject",
        ),
      ),
    );
  }

  function faceItem(subject: Subject, face: Face, index: number): HTMLLIElement {
    const name = subject.displayName || subject.subjectId;
    return h(
      "li",
      {},
      thumbnails.element(face.faceId, `Face ${index + 1} of ${name}`, initials(name)),
      h(
        "button",
        {
          type: "button",
          class: "link small",
          "aria-label": `Delete face ${index + 1} of ${name}`,
          onclick: () => void deleteFace(subject, face, index),
        },
        "Delete",
      ),
    );
  }

  async function deleteFace(subject: Subject, face: Face, index: number): Promise<void> {
    const name = subject.displayName || subject.subjectId;
    const last = subject.faces.length === 1 ? " It is the subject's only face: the subject stays, with none." : "";
    await openDialog({
      title: `Delete face ${index + 1} of ${name}?`,
      body: `Face ${face.faceId} stops matching at once.${last}`,
      confirmLabel: "Delete face",
      danger: true,
      onConfirm: async () => {
        await api.faces.deleteFace({ collection, faceId: face.faceId }, { signal });
        thumbnails.forget(face.faceId);
        status.set(`Deleted face ${index + 1} of ${name}.`);
        await load();
      },
    });
  }

  async function deleteSubject(subject: Subject): Promise<void> {
    const name = subject.displayName || subject.subjectId;
    await openDialog({
      title: `Delete ${name}?`,
      body: `This removes subject ${subject.subjectId} and its ${plural(subject.faces.length, "face")} from ${collection}.`,
      confirmLabel: "Delete subject",
      danger: true,
      onConfirm: async () => {
        const answer = await api.faces.deleteSubject({ collection, subjectId: subject.subjectId }, { signal });
        subject.faces.forEach((face) => thumbnails.forget(face.faceId));
        status.set(`Deleted ${name} (${plural(answer.deletedFaces, "face")}).`);
        await load();
      },
    });
  }

  const search = debounce(() => {
    pageTokens = [""];
    pageIndex = 0;
    void load();
  }, SEARCH_DELAY_MS);
  searchInput.addEventListener("input", search);
  previousButton.addEventListener("click", () => {
    pageIndex = Math.max(0, pageIndex - 1);
    void load();
  });
  nextButton.addEventListener("click", () => {
    pageIndex += 1;
    void load();
  });

  const enroll = enrollForm({ collection, objectUrls, signal, onEnrolled: () => void load() });
  onLeave(() => {
    enroll.stopCamera();
    objectUrls.revokeAll();
  });

  root.append(
    pageHeading(`Subjects of ${collection}`, h("a", { href: "#/collections" }, "All collections")),
    error.element,
    status.element,
    notice,
    h("div", { role: "search", class: "toolbar" }, field("Search subjects", searchInput)),
    summary,
    grid,
    h("nav", { class: "pager", "aria-label": "Subject pages" }, previousButton, pageLabel, nextButton),
    enroll.element,
  );
  void load();
}
