// The enroll form of a collection's subjects page: photos from files or the webcam, and each photo's outcome.
import type { MessageInitShape } from "@bufbuild/protobuf";
import { ConnectError } from "@connectrpc/connect";
import { api } from "./api";
import { checkbox, field, h, replaceChildren, uniqueId } from "./dom";
import { decimal, plural, subjectName } from "./format";
import type { BoundingBox } from "./gen/argus/common/v1/common_pb";
import {
  EnrollMode,
  EnrollResponseSchema,
  PhotoStatus,
  type EnrollPhotoSchema,
  type EnrollResponse,
  type PhotoOutcome,
} from "./gen/argus/facedb/v1/facedb_pb";
import { annotatedImage, Camera, fileBytes, hasCamera, type ObjectUrls } from "./images";
import { ErrorArea, StatusLine } from "./page";

interface PendingPhoto {
  blob: Blob;
  name: string;
  url: string;
}

const STATUS_WORDS: Record<PhotoStatus, string> = {
  [PhotoStatus.PHOTO_STATUS_UNSPECIFIED]: "no outcome",
  [PhotoStatus.PHOTO_ENROLLED]: "enrolled",
  [PhotoStatus.PHOTO_ALREADY_ENROLLED]: "already enrolled",
  [PhotoStatus.PHOTO_NOT_ENROLLED]: "passed, but not enrolled because another photo was refused",
  [PhotoStatus.PHOTO_UNREADABLE]: "refused: not a readable image",
  [PhotoStatus.PHOTO_NO_FACE]: "refused: no face found",
  [PhotoStatus.PHOTO_SEVERAL_FACES]: "refused: several faces, choose one",
  [PhotoStatus.PHOTO_NO_FACE_AT_BOX]: "refused: no face at the chosen box",
  [PhotoStatus.PHOTO_FACE_TOO_SMALL]: "refused: the face is too small",
  [PhotoStatus.PHOTO_TOO_BLURRY]: "refused: too blurry",
  [PhotoStatus.PHOTO_SPOOF]: "refused: looks like a print or a screen",
};

function isAccepted(status: PhotoStatus): boolean {
  return status === PhotoStatus.PHOTO_ENROLLED || status === PhotoStatus.PHOTO_ALREADY_ENROLLED;
}

/** The photo outcomes of a refused all-or-nothing Enroll: the gateway sends them as an error detail. */
function refusedOutcomes(failure: unknown): PhotoOutcome[] {
  return ConnectError.from(failure)
    .findDetails(EnrollResponseSchema)
    .flatMap((details) => details.photos);
}

export interface EnrollFormOptions {
  collection: string;
  objectUrls: ObjectUrls;
  signal: AbortSignal;
  onEnrolled: (response: EnrollResponse) => void;
}

export function enrollForm({ collection, objectUrls, signal, onEnrolled }: EnrollFormOptions): {
  element: HTMLElement;
  stopCamera: () => void;
} {
  const pending: PendingPhoto[] = [];
  const subjectInput = h("input", { type: "text", required: true, maxlength: 128, autocomplete: "off" });
  const nameInput = h("input", { type: "text", maxlength: 256, autocomplete: "off" });
  const fileInput = h("input", { type: "file", accept: "image/*", multiple: true });
  const takeLargest = checkbox("With several faces in a photo, take the largest");
  const whatPasses = checkbox("Enroll the photos that pass even when others are refused");
  const pendingList = h("ul", { class: "pending-photos", "aria-label": "Photos to enroll" });
  const submit = h("button", { type: "submit" }, "Enroll");
  const error = new ErrorArea();
  const status = new StatusLine();
  const outcomeArea = h("div", { class: "enroll-outcome" });

  const camera = new Camera();
  const cameraButton = h("button", { type: "button", class: "secondary", hidden: true }, "Use the camera");
  const captureButton = h("button", { type: "button" }, "Capture photo");
  const stopButton = h("button", { type: "button", class: "secondary" }, "Stop the camera");
  const cameraPanel = h(
    "div",
    { class: "camera", hidden: true },
    camera.video,
    h("div", { class: "actions" }, captureButton, stopButton),
  );
  camera.video.setAttribute("aria-label", "Camera preview");

  function addPhoto(blob: Blob, name: string): void {
    pending.push({ blob, name, url: objectUrls.of(blob) });
    renderPending();
  }

  function renderPending(): void {
    replaceChildren(
      pendingList,
      pending.map((photo, index) =>
        h(
          "li",
          {},
          h("img", { src: photo.url, alt: `Photo ${index + 1}: ${photo.name}`, width: 72, height: 72 }),
          h("span", { class: "pending-name" }, `${index + 1}. ${photo.name}`),
          h(
            "button",
            {
              type: "button",
              class: "secondary small",
              "aria-label": `Remove photo ${index + 1} (${photo.name})`,
              onclick: () => {
                objectUrls.revoke(photo.url);
                pending.splice(index, 1);
                renderPending();
              },
            },
            "Remove",
          ),
        ),
      ),
    );
    submit.textContent = pending.length > 1 ? `Enroll ${pending.length} photos` : "Enroll";
  }

  fileInput.addEventListener("change", () => {
    for (const file of fileInput.files ?? []) addPhoto(file, file.name);
    fileInput.value = "";
  });

  void hasCamera().then((available) => (cameraButton.hidden = !available));
  cameraButton.addEventListener("click", async () => {
    error.clear();
    try {
      await camera.start();
      cameraPanel.hidden = false;
      cameraButton.hidden = true;
      captureButton.focus();
    } catch (failure) {
      error.showText(`Could not start the camera: ${failure instanceof Error ? failure.message : String(failure)}`);
    }
  });
  let captured = 0;
  captureButton.addEventListener("click", async () => {
    try {
      captured += 1;
      addPhoto(await camera.capture(), `camera-${captured}.jpg`);
      status.set(`Captured photo ${pending.length}.`);
    } catch (failure) {
      error.showText(failure instanceof Error ? failure.message : String(failure));
    }
  });
  const stopCamera = () => {
    camera.stop();
    cameraPanel.hidden = true;
    cameraButton.hidden = false;
  };
  stopButton.addEventListener("click", () => {
    stopCamera();
    cameraButton.focus();
  });

  async function enroll(photos: PendingPhoto[], faceBoxes: (BoundingBox | undefined)[]): Promise<void> {
    error.clear();
    status.set(`Enrolling ${plural(photos.length, "photo")}…`);
    submit.disabled = true;
    const subjectId = subjectInput.value.trim();
    try {
      const enrollPhotos: MessageInitShape<typeof EnrollPhotoSchema>[] = await Promise.all(
        photos.map(async (photo, index) => ({
          image: { data: await fileBytes(photo.blob), name: photo.name },
          faceBox: faceBoxes[index],
        })),
      );
      const response = await api.faces.enroll(
        {
          collection,
          subjectId,
          displayName: nameInput.value.trim(),
          photos: enrollPhotos,
          takeLargestFace: takeLargest.input.checked,
          mode: whatPasses.input.checked ? EnrollMode.ENROLL_WHAT_PASSES : EnrollMode.ENROLL_ALL_OR_NOTHING,
        },
        { signal },
      );
      const added = response.faceIds.length;
      status.set(
        `${response.createdSubject ? "Created" : "Updated"} subject ${subjectId}: ${plural(added, "face")} added.`,
      );
      renderOutcome(photos, faceBoxes, response.photos, response);
      if (response.photos.every((outcome) => isAccepted(outcome.status))) {
        // Enrolled: the next subject starts from an empty form (the outcome keeps showing the photos).
        pending.length = 0;
        renderPending();
      }
      if (response.subject) onEnrolled(response);
    } catch (failure) {
      status.set("");
      error.show(failure, "Nothing was enrolled.");
      const outcomes = refusedOutcomes(failure);
      if (outcomes.length) renderOutcome(photos, faceBoxes, outcomes);
      else replaceChildren(outcomeArea);
    } finally {
      submit.disabled = false;
    }
  }

  function renderOutcome(
    photos: PendingPhoto[],
    faceBoxes: (BoundingBox | undefined)[],
    outcomes: PhotoOutcome[],
    response?: EnrollResponse,
  ): void {
    const warnings = response?.warnings ?? [];
    const items = outcomes.map((outcome) => {
      const photo = photos[outcome.index];
      const name = photo ? photo.name : `photo ${outcome.index + 1}`;
      const words = STATUS_WORDS[outcome.status] ?? "unknown outcome";
      const face = outcome.faceId ? ` as face ${outcome.faceId}` : "";
      const detail = outcome.detail && !isAccepted(outcome.status) ? ` (${outcome.detail})` : "";
      const photoWarnings = warnings
        .filter((warning) => warning.photoIndex === outcome.index)
        .map((warning) =>
          h(
            "p",
            { class: "warning" },
            `Warning: this face already matches ${subjectName(warning.displayName, warning.subjectId)} ` +
              `at similarity ${decimal(warning.similarity)} ≥ ${decimal(warning.threshold)}: ` +
              "the same person enrolled twice, or a mislabel. The photo was enrolled all the same.",
          ),
        );
      const choices =
        photo && outcome.candidateBoxes.length
          ? candidateChooser(photos, faceBoxes, outcome.index, outcome.candidateBoxes)
          : null;
      return h(
        "li",
        { class: isAccepted(outcome.status) ? "ok" : "refused" },
        h("strong", {}, `Photo ${outcome.index + 1} (${name}): `),
        `${words}${face}${detail}`,
        photoWarnings,
        choices,
      );
    });
    replaceChildren(outcomeArea, h("h3", {}, "Outcome of each photo"), h("ul", { class: "outcomes" }, items));
  }

  /** Buttons to enroll again with one of the detected faces of photo `index` chosen (the others as before). */
  function candidateChooser(
    photos: PendingPhoto[],
    faceBoxes: (BoundingBox | undefined)[],
    index: number,
    boxes: BoundingBox[],
  ): HTMLElement {
    const photo = photos[index];
    const overlay = boxes.map((box, boxIndex) => ({ box, label: String(boxIndex + 1), tone: "candidate" as const }));
    const groupLabel = uniqueId("candidates");
    return h(
      "div",
      { class: "candidates", role: "group", "aria-labelledby": groupLabel },
      h("p", { id: groupLabel }, `Which face of photo ${index + 1} is ${subjectInput.value.trim() || "the subject"}?`),
      annotatedImage(photo.url, `Photo ${index + 1} with its faces numbered`, overlay),
      h(
        "div",
        { class: "actions" },
        boxes.map((box, boxIndex) =>
          h(
            "button",
            {
              type: "button",
              class: "secondary",
              onclick: () =>
                void enroll(
                  photos,
                  photos.map((_, i) => (i === index ? box : faceBoxes[i])),
                ),
            },
            `Enroll face ${boxIndex + 1}`,
          ),
        ),
      ),
    );
  }

  const form = h(
    "form",
    { class: "card", "aria-labelledby": "enroll-heading" },
    h("h2", { id: "enroll-heading" }, "Enroll a subject"),
    h(
      "p",
      { class: "muted" },
      "A new subject ID creates the subject; an existing one adds faces to it. One clear photo is enough.",
    ),
    h("div", { class: "form-row" }, field("Subject ID", subjectInput), field("Display name", nameInput)),
    field("Photos", fileInput, "JPEG, PNG, WebP or BMP; choose several at once if you like."),
    cameraButton,
    cameraPanel,
    pendingList,
    takeLargest.wrapper,
    whatPasses.wrapper,
    error.element,
    status.element,
    h("div", { class: "actions" }, submit),
    outcomeArea,
  );
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    if (pending.length === 0) {
      error.showText("Choose at least one photo, or capture one with the camera.");
      fileInput.focus();
      return;
    }
    void enroll([...pending], []);
  });
  return { element: form, stopCamera };
}
