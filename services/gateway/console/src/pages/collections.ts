import { api } from "../api";
import { openDialog } from "../dialog";
import { checkbox, field, h, replaceChildren } from "../dom";
import { dateTime, decimal, plural } from "../format";
import type { Collection, Profile } from "../gen/argus/facedb/v1/facedb_pb";
import { ErrorArea, pageHeading, StatusLine, type PageContext } from "../page";

function profileOptions(profiles: Profile[], selected: string): HTMLOptionElement[] {
  return profiles.map((profile) => {
    const notes = [profile.isDefault ? "default" : "", profile.calibrated ? "" : "not calibrated"].filter(Boolean);
    const label = notes.length ? `${profile.name} (${notes.join(", ")})` : profile.name;
    return h("option", { value: profile.name, selected: profile.name === selected }, label);
  });
}

function profileCell(collection: Collection): (Node | string)[] {
  if (!collection.pendingProfile) return [collection.profile];
  const done = `${collection.reembeddedFaces} of ${collection.faceCount} faces`;
  return [
    collection.profile,
    h("br"),
    h("span", { class: "muted" }, `changing to ${collection.pendingProfile}: ${done}`),
  ];
}

/** The collections: list, create, change profile and liveness, delete. */
export function collectionsPage({ root, signal }: PageContext): void {
  const error = new ErrorArea();
  const status = new StatusLine();
  const tableArea = h("div", { class: "table-wrap" }, h("p", { class: "muted" }, "Loading collections…"));
  let profiles: Profile[] = [];

  const nameInput = h("input", { type: "text", required: true, maxlength: 128, autocomplete: "off", pattern: "\\S+" });
  const profileSelect = h("select", {});
  const thresholdInput = h("input", { type: "number", min: 0, max: 1, step: "any", placeholder: "profile default" });
  const liveness = checkbox("Require a live face (passive liveness) unless a request says otherwise");
  const createButton = h("button", { type: "submit" }, "Create collection");
  const createError = new ErrorArea();
  const createForm = h(
    "form",
    { class: "card", "aria-labelledby": "create-collection-heading" },
    h("h2", { id: "create-collection-heading" }, "New collection"),
    h(
      "div",
      { class: "form-row" },
      field("Name", nameInput),
      field("Profile", profileSelect, "The embedding profile its faces are compared with."),
      field("Threshold", thresholdInput, "Cosine similarity for a match; empty: the profile's calibrated one."),
    ),
    liveness.wrapper,
    createError.element,
    h("div", { class: "actions" }, createButton),
  );

  async function load(): Promise<void> {
    try {
      const answer = await api.faces.listCollections({}, { signal });
      error.clear();
      renderTable(answer.collections);
    } catch (failure) {
      error.show(failure, "Could not list the collections.");
      replaceChildren(tableArea);
    }
  }

  async function loadProfiles(): Promise<void> {
    try {
      profiles = (await api.faces.listProfiles({}, { signal })).profiles;
      const preferred = profiles.find((profile) => profile.isDefault)?.name ?? profiles[0]?.name ?? "";
      replaceChildren(profileSelect, profileOptions(profiles, preferred));
    } catch (failure) {
      createError.show(failure, "Could not list the profiles.");
    }
  }

  function renderTable(collections: Collection[]): void {
    if (collections.length === 0) {
      replaceChildren(tableArea, h("p", {}, "No collections yet: create one below."));
      return;
    }
    const rows = collections.map((collection) =>
      h(
        "tr",
        {},
        h(
          "th",
          { scope: "row" },
          h("a", { href: `#/subjects/${encodeURIComponent(collection.name)}` }, collection.name),
        ),
        h("td", {}, profileCell(collection)),
        h("td", { class: "number" }, decimal(collection.threshold)),
        h("td", { class: "number" }, String(collection.subjectCount)),
        h("td", { class: "number" }, String(collection.faceCount)),
        h("td", {}, collection.requireLiveness ? "required" : "not required"),
        h("td", {}, dateTime(collection.createdAt)),
        h(
          "td",
          { class: "row-actions" },
          h(
            "button",
            {
              type: "button",
              class: "secondary",
              "aria-label": `Edit ${collection.name}`,
              onclick: () => edit(collection),
            },
            "Edit",
          ),
          h(
            "button",
            {
              type: "button",
              class: "danger",
              "aria-label": `Delete ${collection.name}`,
              onclick: () => remove(collection),
            },
            "Delete",
          ),
        ),
      ),
    );
    replaceChildren(
      tableArea,
      h(
        "table",
        {},
        h("caption", {}, plural(collections.length, "collection")),
        h(
          "thead",
          {},
          h(
            "tr",
            {},
            ["Name", "Profile", "Threshold", "Subjects", "Faces", "Liveness", "Created", "Actions"].map((title) =>
              h("th", { scope: "col" }, title),
            ),
          ),
        ),
        h("tbody", {}, rows),
      ),
    );
  }

  async function edit(collection: Collection): Promise<void> {
    const profileChoice = h("select", {}, profileOptions(profiles, collection.pendingProfile || collection.profile));
    const livenessChoice = checkbox("Require a live face unless a request says otherwise", collection.requireLiveness);
    const body = h(
      "div",
      {},
      field(
        "Profile",
        profileChoice,
        "Changing it re-embeds every face in the background; the collection keeps serving on its current profile " +
          "until all are done. Choosing the current profile cancels a change in progress.",
      ),
      livenessChoice.wrapper,
      h(
        "p",
        { class: "muted" },
        `The threshold (${decimal(collection.threshold)}) is set when a collection is created.`,
      ),
    );
    await openDialog({
      title: `Edit ${collection.name}`,
      body,
      confirmLabel: "Save",
      onConfirm: async () => {
        const wantedProfile = profileChoice.value;
        if (wantedProfile && wantedProfile !== (collection.pendingProfile || collection.profile)) {
          await api.faces.changeProfile({ collection: collection.name, profile: wantedProfile }, { signal });
        }
        if (livenessChoice.input.checked !== collection.requireLiveness) {
          await api.faces.updateCollection(
            { name: collection.name, requireLiveness: livenessChoice.input.checked },
            { signal },
          );
        }
        status.set(`Saved ${collection.name}.`);
        await load();
      },
    });
  }

  async function remove(collection: Collection): Promise<void> {
    await openDialog({
      title: `Delete ${collection.name}?`,
      body:
        `This removes the collection with its ${plural(collection.subjectCount, "subject")} and ` +
        `${plural(collection.faceCount, "face")}. It cannot be undone.`,
      confirmLabel: "Delete collection",
      danger: true,
      onConfirm: async () => {
        const answer = await api.faces.deleteCollection({ name: collection.name }, { signal });
        status.set(
          `Deleted ${collection.name}: ${plural(answer.deletedSubjects, "subject")}, ${plural(answer.deletedFaces, "face")}.`,
        );
        await load();
      },
    });
  }

  createForm.addEventListener("submit", async (event) => {
    event.preventDefault();
    createError.clear();
    createButton.disabled = true;
    try {
      const created = await api.faces.createCollection(
        {
          name: nameInput.value.trim(),
          profile: profileSelect.value,
          threshold: thresholdInput.value ? Number(thresholdInput.value) : 0,
          requireLiveness: liveness.input.checked,
        },
        { signal },
      );
      status.set(`Created collection ${created.name} (${created.profile}, threshold ${decimal(created.threshold)}).`);
      createForm.reset();
      replaceChildren(profileSelect, profileOptions(profiles, profiles.find((p) => p.isDefault)?.name ?? ""));
      await load();
    } catch (failure) {
      createError.show(failure, "Could not create the collection.");
    } finally {
      createButton.disabled = false;
    }
  });

  root.append(
    pageHeading(
      "Collections",
      h("button", { type: "button", class: "secondary", onclick: () => void load() }, "Refresh"),
    ),
    error.element,
    status.element,
    tableArea,
    createForm,
  );
  void loadProfiles();
  void load();
}
