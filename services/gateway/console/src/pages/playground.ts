import { api } from "../api";
import { field, h, replaceChildren, uniqueId } from "../dom";
import { decimal, percent, plural, subjectName } from "../format";
import {
  LivenessRequirement,
  ProbeOutcome,
  QualityFilter,
  type IdentifiedFace,
  type IdentifyResponse,
  type VerifyResponse,
} from "../gen/argus/facedb/v1/facedb_pb";
import { annotatedImage, fileBytes, ObjectUrls, type BoxTone, type OverlayBox } from "../images";
import { ErrorArea, pageHeading, StatusLine, type PageContext } from "../page";

type Mode = "verify" | "identify";

function option(value: string | number, label: string, selected = false): HTMLOptionElement {
  return h("option", { value: String(value), selected }, label);
}

/** Try Verify (1:1) and Identify (1:K) on a photo and see the faces, boxes and scores. */
export function playgroundPage({ root, signal, onLeave }: PageContext): void {
  const objectUrls = new ObjectUrls();
  onLeave(() => objectUrls.revokeAll());
  const error = new ErrorArea();
  const status = new StatusLine();
  let photo: File | null = null;
  let photoUrl = "";
  let resultUrl = "";

  const collectionSelect = h("select", { required: true });
  const modeName = uniqueId("mode");
  const verifyRadio = h("input", {
    type: "radio",
    name: modeName,
    value: "verify",
    id: `${modeName}-verify`,
    checked: true,
  });
  const identifyRadio = h("input", { type: "radio", name: modeName, value: "identify", id: `${modeName}-identify` });
  const modeGroup = h(
    "fieldset",
    { class: "inline-choices" },
    h("legend", {}, "Question"),
    h(
      "div",
      { class: "check" },
      verifyRadio,
      h("label", { for: verifyRadio.id }, "Verify: is this the claimed subject?"),
    ),
    h(
      "div",
      { class: "check" },
      identifyRadio,
      h("label", { for: identifyRadio.id }, "Identify: who is in this photo?"),
    ),
  );
  const subjectInput = h("input", { type: "text", autocomplete: "off", maxlength: 128 });
  const subjectField = field("Claimed subject ID", subjectInput);
  const topKInput = h("input", { type: "number", min: 1, max: 100, value: 3 });
  const topKField = field("Candidates per face", topKInput);
  topKField.hidden = true;
  const qualitySelect = h(
    "select",
    {},
    option(QualityFilter.AUTO, "Auto", true),
    option(QualityFilter.NONE, "None"),
    option(QualityFilter.LOW, "Low"),
    option(QualityFilter.MEDIUM, "Medium"),
    option(QualityFilter.HIGH, "High"),
  );
  const livenessSelect = h(
    "select",
    {},
    option(LivenessRequirement.LIVENESS_COLLECTION_DEFAULT, "As the collection says", true),
    option(LivenessRequirement.LIVENESS_REQUIRED, "Required"),
    option(LivenessRequirement.LIVENESS_NOT_REQUIRED, "Not required"),
  );
  const fileInput = h("input", { type: "file", accept: "image/*" });
  const preview = h("div", { class: "drop-preview" });
  const dropZone = h(
    "div",
    { class: "drop-zone" },
    field("Photo", fileInput, "Choose a photo, or drop one here."),
    preview,
  );
  const submit = h("button", { type: "submit" }, "Verify");
  const stage = h("div", { class: "result-stage" });
  const resultList = h("div", { class: "result-text" });
  const resultSection = h(
    "section",
    { class: "card", "aria-labelledby": "result-heading", hidden: true },
    h("h2", { id: "result-heading" }, "Result"),
    h("div", { class: "result-layout" }, stage, h("div", { "aria-live": "polite" }, resultList)),
  );

  const mode = (): Mode => (identifyRadio.checked ? "identify" : "verify");
  const showMode = () => {
    subjectField.hidden = mode() !== "verify";
    subjectInput.required = mode() === "verify";
    topKField.hidden = mode() !== "identify";
    submit.textContent = mode() === "verify" ? "Verify" : "Identify";
  };
  verifyRadio.addEventListener("change", showMode);
  identifyRadio.addEventListener("change", showMode);

  function choosePhoto(file: File): void {
    photo = file;
    if (photoUrl) objectUrls.revoke(photoUrl);
    photoUrl = objectUrls.of(file);
    replaceChildren(preview, h("img", { src: photoUrl, alt: `Chosen photo: ${file.name}` }), h("span", {}, file.name));
  }
  fileInput.addEventListener("change", () => fileInput.files?.[0] && choosePhoto(fileInput.files[0]));
  dropZone.addEventListener("dragover", (event) => {
    event.preventDefault();
    dropZone.classList.add("dragging");
  });
  dropZone.addEventListener("dragleave", () => dropZone.classList.remove("dragging"));
  dropZone.addEventListener("drop", (event) => {
    event.preventDefault();
    dropZone.classList.remove("dragging");
    const file = event.dataTransfer?.files[0];
    if (file) choosePhoto(file);
  });

  function feedbackButtons(decisionId: string, subjectId: string): HTMLElement | null {
    if (!decisionId) return null;
    const line = new StatusLine();
    const send = async (confirm: boolean) => {
      try {
        const collection = collectionSelect.value;
        if (confirm) {
          const answer = await api.faces.confirmDecision({ collection, decisionId, subjectId }, { signal });
          line.set(
            answer.added
              ? `Thanks: the face joined ${answer.subjectId}'s template.`
              : `Noted, not added: ${answer.detail}`,
          );
        } else {
          const answer = await api.faces.rejectDecision({ collection, decisionId, subjectId }, { signal });
          line.set(`Noted: kept as an impostor example of ${answer.subjectId} (${answer.impostorExamples} now).`);
        }
      } catch (failure) {
        error.show(failure, "Feedback not recorded.");
      }
    };
    return h(
      "div",
      { class: "feedback" },
      h(
        "button",
        { type: "button", class: "secondary small", onclick: () => void send(true) },
        `Right: it is ${subjectId}`,
      ),
      h(
        "button",
        { type: "button", class: "secondary small", onclick: () => void send(false) },
        `Wrong: not ${subjectId}`,
      ),
      line.element,
    );
  }

  function showVerify(probe: File, answer: VerifyResponse, subjectId: string): void {
    const scores =
      `similarity ${decimal(answer.similarity)}, threshold ${decimal(answer.threshold)} ` +
      `(template of ${plural(answer.templateFaces, "face")}), probability ${percent(answer.probability)}`;
    const verdicts: Record<ProbeOutcome, [string, string]> = {
      [ProbeOutcome.MATCH]: ["Match", `This is ${subjectId}: ${scores}.`],
      [ProbeOutcome.NO_MATCH]: ["No match", `This is not ${subjectId}: ${scores}.`],
      [ProbeOutcome.NO_FACE]: ["No face", answer.detail || "No face was found in the photo: nothing was compared."],
      [ProbeOutcome.SPOOF]: ["Not live", answer.detail || "The face looks like a print or a screen."],
      [ProbeOutcome.LOW_QUALITY]: ["Low quality", answer.detail || "The face is below the quality filter."],
      [ProbeOutcome.PROBE_OUTCOME_UNSPECIFIED]: ["No outcome", answer.detail],
    };
    const [verdict, explanation] = verdicts[answer.outcome];
    const tone = answer.outcome === ProbeOutcome.MATCH ? "match" : "no-match";
    const boxes: OverlayBox[] = answer.probe?.box
      ? [{ box: answer.probe.box, label: `${verdict} · ${decimal(answer.similarity, 2)}`, tone }]
      : [];
    const probeNotes = answer.probe
      ? [
          answer.probe.facesInImage > 1 ? `${answer.probe.facesInImage} faces in the photo; the largest was used.` : "",
          answer.probe.liveness !== undefined
            ? `Liveness ${decimal(answer.probe.liveness)} (needs ${decimal(answer.probe.livenessThreshold)}).`
            : "",
        ].filter(Boolean)
      : [];
    replaceChildren(
      resultList,
      h("p", { class: `verdict verdict-${tone}` }, h("strong", {}, verdict), " — ", explanation),
      probeNotes.map((note) => h("p", { class: "muted" }, note)),
      answer.outcome === ProbeOutcome.MATCH || answer.outcome === ProbeOutcome.NO_MATCH
        ? feedbackButtons(answer.decisionId, subjectId)
        : null,
    );
    show(probe, boxes);
  }

  /** A found face in words for the list, and the short label and colour of its box. */
  function describeFace(face: IdentifiedFace, index: number): { text: string; label: string; tone: BoxTone } {
    const best = face.candidates[0];
    const which = `Face ${index + 1}`;
    if (face.spoof) {
      return {
        text: `${which}: not live (liveness ${decimal(face.liveness)}), not searched.`,
        label: "not live",
        tone: "no-match",
      };
    }
    if (face.lowQuality) {
      const below = face.quality?.below || "quality";
      return {
        text: `${which}: below the quality filter (${below}), not searched.`,
        label: "low quality",
        tone: "no-match",
      };
    }
    if (face.unknown || !best) {
      const closest = best
        ? ` Closest: ${subjectName(best.displayName, best.subjectId)} at ${decimal(best.similarity)} < ${decimal(best.threshold)}.`
        : "";
      return {
        text: `${which}: unknown, nobody in the collection is close enough.${closest}`,
        label: "unknown",
        tone: "unknown",
      };
    }
    return {
      text:
        `${which}: ${subjectName(best.displayName, best.subjectId)}, similarity ${decimal(best.similarity)} ≥ ` +
        `threshold ${decimal(best.threshold)}, probability ${percent(best.probability)}.`,
      label: `${best.displayName || best.subjectId} · ${decimal(best.similarity, 2)}`,
      tone: "match",
    };
  }

  function showIdentify(probe: File, answer: IdentifyResponse): void {
    const described = answer.faces.map((face, index) => ({ face, ...describeFace(face, index) }));
    const boxes: OverlayBox[] = described.flatMap(({ face, label, tone }, index) =>
      face.box ? [{ box: face.box, label: `${index + 1}: ${label}`, tone }] : [],
    );
    const summary =
      answer.facesFound === 0
        ? "No face was found in the photo."
        : `${plural(answer.facesFound, "face")} found; ${plural(answer.subjectsSearched, "subject")} ` +
          `(${plural(answer.gallerySize, "face")}) searched.` +
          (answer.facesLeftOut ? ` ${answer.facesLeftOut} smaller faces were left out.` : "");
    replaceChildren(
      resultList,
      h("p", { class: "verdict" }, h("strong", {}, summary)),
      h(
        "ol",
        { class: "identified" },
        described.map(({ face, text }) =>
          h(
            "li",
            {},
            text,
            face.candidates.length > 1
              ? h(
                  "ul",
                  { class: "muted" },
                  face.candidates
                    .slice(1)
                    .map((c) =>
                      h("li", {}, `${subjectName(c.displayName, c.subjectId)}: similarity ${decimal(c.similarity)}`),
                    ),
                )
              : null,
            !face.unknown && face.candidates[0] ? feedbackButtons(face.decisionId, face.candidates[0].subjectId) : null,
          ),
        ),
      ),
    );
    show(probe, boxes);
  }

  function show(probe: File, boxes: OverlayBox[]): void {
    // The result has a URL of its own: choosing the next photo must not blank this one.
    if (resultUrl) objectUrls.revoke(resultUrl);
    resultUrl = objectUrls.of(probe);
    replaceChildren(stage, annotatedImage(resultUrl, "The probe photo with its faces outlined", boxes));
    resultSection.hidden = false;
  }

  const form = h(
    "form",
    { class: "card", "aria-label": "Question" },
    h(
      "div",
      { class: "form-row" },
      field("Collection", collectionSelect),
      field("Quality filter", qualitySelect),
      field("Liveness", livenessSelect),
    ),
    modeGroup,
    h("div", { class: "form-row" }, subjectField, topKField),
    dropZone,
    error.element,
    status.element,
    h("div", { class: "actions" }, submit),
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    error.clear();
    if (!photo) {
      error.showText("Choose a photo first.");
      fileInput.focus();
      return;
    }
    const probe = photo;
    const image = { data: await fileBytes(probe), name: probe.name };
    const common = {
      collection: collectionSelect.value,
      image,
      qualityFilter: Number(qualitySelect.value) as QualityFilter,
      liveness: Number(livenessSelect.value) as LivenessRequirement,
    };
    submit.disabled = true;
    status.set(mode() === "verify" ? "Verifying…" : "Identifying…");
    try {
      if (mode() === "verify") {
        const subjectId = subjectInput.value.trim();
        showVerify(probe, await api.faces.verify({ ...common, subjectId }, { signal }), subjectId);
      } else {
        showIdentify(probe, await api.faces.identify({ ...common, topK: Number(topKInput.value) || 1 }, { signal }));
      }
      status.set("Done.");
    } catch (failure) {
      status.set("");
      error.show(failure);
    } finally {
      submit.disabled = false;
    }
  });

  root.append(pageHeading("Playground"), form, resultSection);

  void (async () => {
    try {
      const { collections } = await api.faces.listCollections({}, { signal });
      if (collections.length === 0) error.showText("There is no collection yet: create one on the Collections page.");
      replaceChildren(
        collectionSelect,
        collections.map((c) => option(c.name, `${c.name} (${plural(c.subjectCount, "subject")})`)),
      );
    } catch (failure) {
      error.show(failure, "Could not list the collections.");
    }
  })();
}
