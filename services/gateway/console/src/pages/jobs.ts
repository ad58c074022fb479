import { api, isAbort } from "../api";
import { checkbox, field, h, replaceChildren, uniqueId } from "../dom";
import { dateTime, decimal, percent } from "../format";
import type { BoundingBox } from "../gen/argus/common/v1/common_pb";
import { ImageFormat, JobKind, JobState, type Job, type Style } from "../gen/argus/jobs/v1/jobs_pb";
import { annotatedImage, bytesBlob, fileBytes, ObjectUrls, type OverlayBox } from "../images";
import { ErrorArea, pageHeading, StatusLine, type PageContext } from "../page";

const PAGE_SIZE = 20;
const FINISHED = new Set([JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED]);
// The kind ListStyles gives the arbitrary-style model: it is asked for with a style image, never by name.
const STYLE_IMAGE_KIND = "arbitrary";

/** The photos of jobs submitted from this tab, by job id: a job's result carries no copy of its input. */
const submittedInputs = new Map<string, Blob[]>();
const MAX_REMEMBERED_INPUTS = 20;

function remember(jobId: string, inputs: Blob[]): void {
  submittedInputs.set(jobId, inputs);
  for (const oldest of submittedInputs.keys()) {
    if (submittedInputs.size <= MAX_REMEMBERED_INPUTS) break;
    submittedInputs.delete(oldest);
  }
}

/** An idempotency key, so that a retried submit never queues a second job (randomUUID needs a secure context). */
function idempotencyKey(): string {
  return [...crypto.getRandomValues(new Uint8Array(16))].map((byte) => byte.toString(16).padStart(2, "0")).join("");
}

function stateWords(job: Job): string {
  return JobState[job.state] ?? "UNKNOWN";
}

/** Two stacked images and a labelled range input that uncovers one over the other. */
function beforeAfter(beforeUrl: string, afterUrl: string): HTMLElement {
  const slider = h("input", { type: "range", min: 0, max: 100, value: 50, id: uniqueId("split") });
  const before = h("img", { src: beforeUrl, alt: "Before: the content image", class: "before" });
  const after = h("img", { src: afterUrl, alt: "After: the stylized result", class: "after" });
  const frame = h("div", { class: "compare-frame" }, after, before);
  const update = () => {
    before.style.clipPath = `inset(0 ${100 - Number(slider.value)}% 0 0)`;
    slider.setAttribute("aria-valuetext", `${slider.value}% before, ${100 - Number(slider.value)}% after`);
  };
  slider.addEventListener("input", update);
  update();
  return h(
    "div",
    { class: "compare" },
    frame,
    h("div", { class: "field" }, h("label", { for: slider.id }, "Before / after split"), slider),
  );
}

/** The cells of a job's row that change as the job does. */
interface JobRowCells {
  state: HTMLElement;
  progress: HTMLProgressElement;
  finished: HTMLElement;
  error: HTMLElement;
  actions: HTMLElement;
}

/** Jobs: submit stylization and detection jobs, follow them live, see their results. */
export function jobsPage({ root, signal, onLeave }: PageContext): void {
  const objectUrls = new ObjectUrls();
  const watchers = new Map<string, AbortController>();
  const rows = new Map<string, JobRowCells>();
  const showWhenDone = new Set<string>();
  onLeave(() => {
    for (const watcher of watchers.values()) watcher.abort();
    watchers.clear();
    objectUrls.revokeAll();
  });
  const error = new ErrorArea();
  const tableArea = h("div", { class: "table-wrap" });
  const resultArea = h("section", { class: "card", "aria-labelledby": "job-result-heading", hidden: true });
  const olderButton = h("button", { type: "button", class: "secondary", disabled: true }, "Older jobs");
  const newestButton = h("button", { type: "button", class: "secondary", disabled: true }, "Newest jobs");
  let pageTokens = [""];
  let pageIndex = 0;

  // Stylization form.
  const contentInput = h("input", { type: "file", accept: "image/*", required: true });
  const sourceName = uniqueId("style-source");
  const namedRadio = h("input", { type: "radio", name: sourceName, id: `${sourceName}-named`, checked: true });
  const imageRadio = h("input", { type: "radio", name: sourceName, id: `${sourceName}-image` });
  const styleSelect = h("select", {});
  const styleImageInput = h("input", { type: "file", accept: "image/*" });
  const strengthInput = h("input", { type: "range", min: 0, max: 1, step: 0.05, value: 1 });
  const maxSizeInput = h("input", { type: "number", min: 0, max: 8192, step: 1, value: 512 });
  const formatSelect = h(
    "select",
    {},
    h("option", { value: String(ImageFormat.JPEG) }, "JPEG"),
    h("option", { value: String(ImageFormat.PNG) }, "PNG"),
    h("option", { value: String(ImageFormat.WEBP) }, "WebP"),
  );
  const styleField = field("Style", styleSelect);
  const styleImageField = field("Style image", styleImageInput);
  const strengthField = field(
    "Style strength",
    strengthInput,
    "0 keeps the content's own style, 1 takes the style image's.",
  );
  const showStyleSource = () => {
    styleField.hidden = !namedRadio.checked;
    styleImageField.hidden = strengthField.hidden = namedRadio.checked;
    styleImageInput.required = imageRadio.checked;
  };
  namedRadio.addEventListener("change", showStyleSource);
  imageRadio.addEventListener("change", showStyleSource);
  showStyleSource();
  const stylizeError = new ErrorArea();
  const stylizeStatus = new StatusLine();
  const stylizeButton = h("button", { type: "submit" }, "Submit stylization");
  const stylizeForm = h(
    "form",
    { class: "card", "aria-labelledby": "stylize-heading" },
    h("h2", { id: "stylize-heading" }, "Stylize an image"),
    field("Content image", contentInput),
    h(
      "fieldset",
      { class: "inline-choices" },
      h("legend", {}, "Style from"),
      h("div", { class: "check" }, namedRadio, h("label", { for: namedRadio.id }, "A named style")),
      h("div", { class: "check" }, imageRadio, h("label", { for: imageRadio.id }, "A style image")),
    ),
    h("div", { class: "form-row" }, styleField, styleImageField, strengthField),
    h(
      "div",
      { class: "form-row" },
      field("Max size (px)", maxSizeInput, "Longest side of the output; 0 keeps the content's size."),
      field("Output format", formatSelect),
    ),
    stylizeError.element,
    stylizeStatus.element,
    h("div", { class: "actions" }, stylizeButton),
  );

  // Detection form.
  const detectInput = h("input", { type: "file", accept: "image/*", multiple: true, required: true });
  const objects = checkbox("Objects (COCO classes)", true);
  const faces = checkbox("Faces", true);
  const detectError = new ErrorArea();
  const detectStatus = new StatusLine();
  const detectForm = h(
    "form",
    { class: "card", "aria-labelledby": "detect-heading" },
    h("h2", { id: "detect-heading" }, "Detect objects and faces"),
    field("Images", detectInput),
    objects.wrapper,
    faces.wrapper,
    detectError.element,
    detectStatus.element,
    h("div", { class: "actions" }, h("button", { type: "submit" }, "Submit detection")),
  );

  async function submit(
    job: Parameters<typeof api.jobs.submitJob>[0]["job"],
    inputs: Blob[],
    errors: ErrorArea,
    status: StatusLine,
  ): Promise<void> {
    errors.clear();
    try {
      const submitted = await api.jobs.submitJob({ job, idempotencyKey: idempotencyKey() }, { signal });
      remember(submitted.jobId, inputs);
      showWhenDone.add(submitted.jobId);
      status.set(`Submitted job ${submitted.jobId}: ${stateWords(submitted)}.`);
      pageTokens = [""];
      pageIndex = 0;
      await load();
    } catch (failure) {
      status.set("");
      errors.show(failure, "The job was not submitted.");
    }
  }

  stylizeForm.addEventListener("submit", async (event) => {
    event.preventDefault();
    const content = contentInput.files?.[0];
    if (!content) return;
    const styleImage = styleImageInput.files?.[0];
    if (imageRadio.checked && !styleImage) {
      stylizeError.showText("Choose a style image, or pick a named style.");
      return;
    }
    stylizeButton.disabled = true;
    try {
      const style =
        imageRadio.checked && styleImage
          ? { case: "styleImage" as const, value: { data: await fileBytes(styleImage), name: styleImage.name } }
          : { case: "styleName" as const, value: styleSelect.value };
      await submit(
        {
          case: "stylization",
          value: {
            content: { data: await fileBytes(content), name: content.name },
            style,
            strength: imageRadio.checked ? Number(strengthInput.value) : undefined,
            maxSize: Number(maxSizeInput.value) || 0,
            outputFormat: Number(formatSelect.value) as ImageFormat,
          },
        },
        [content],
        stylizeError,
        stylizeStatus,
      );
    } finally {
      stylizeButton.disabled = false;
    }
  });

  detectForm.addEventListener("submit", async (event) => {
    event.preventDefault();
    const files = [...(detectInput.files ?? [])];
    if (files.length === 0) return;
    if (!objects.input.checked && !faces.input.checked) {
      detectError.showText("Ask for objects, faces or both.");
      return;
    }
    const images = await Promise.all(files.map(async (file) => ({ data: await fileBytes(file), name: file.name })));
    await submit(
      { case: "detection", value: { images, objects: objects.input.checked, faces: faces.input.checked } },
      files,
      detectError,
      detectStatus,
    );
  });

  async function load(): Promise<void> {
    try {
      const answer = await api.jobs.listJobs({ pageSize: PAGE_SIZE, pageToken: pageTokens[pageIndex] }, { signal });
      error.clear();
      if (answer.nextPageToken) pageTokens[pageIndex + 1] = answer.nextPageToken;
      else pageTokens = pageTokens.slice(0, pageIndex + 1);
      newestButton.disabled = pageIndex === 0;
      olderButton.disabled = !answer.nextPageToken;
      renderTable(answer.jobs);
      for (const job of answer.jobs) {
        if (!FINISHED.has(job.state)) watch(job.jobId);
        // A job submitted here that finished before it was listed shows its result all the same.
        else if (job.state === JobState.SUCCEEDED && showWhenDone.delete(job.jobId)) void showResult(job.jobId);
      }
    } catch (failure) {
      if (!isAbort(failure)) error.show(failure, "Could not list the jobs.");
    }
  }

  function renderTable(jobs: Job[]): void {
    rows.clear();
    if (jobs.length === 0) {
      replaceChildren(tableArea, h("p", {}, "No jobs yet."));
      return;
    }
    const body = jobs.map((job) => {
      const cells: JobRowCells = {
        state: h("td", {}),
        progress: h("progress", { max: 1, "aria-label": `Progress of job ${job.jobId}` }),
        finished: h("td", {}),
        error: h("td", { class: "detail" }),
        actions: h("td", { class: "row-actions" }),
      };
      rows.set(job.jobId, cells);
      update(job);
      return h(
        "tr",
        {},
        // The first characters tell jobs apart; the whole ID is in the tooltip and the result's heading.
        h("th", { scope: "row" }, h("code", { title: job.jobId, class: "job-id" }, job.jobId.slice(0, 8))),
        h("td", {}, JobKind[job.kind] ?? "UNKNOWN"),
        cells.state,
        h("td", {}, cells.progress),
        h("td", {}, dateTime(job.createdAt)),
        cells.finished,
        cells.error,
        cells.actions,
      );
    });
    replaceChildren(
      tableArea,
      h(
        "table",
        {},
        h("caption", { class: "visually-hidden" }, "Jobs, newest first"),
        h(
          "thead",
          {},
          h(
            "tr",
            {},
            ["Job", "Kind", "State", "Progress", "Created", "Finished", "Error", "Actions"].map((t) =>
              h("th", { scope: "col" }, t),
            ),
          ),
        ),
        h("tbody", {}, body),
      ),
    );
  }

  function update(job: Job): void {
    const cells = rows.get(job.jobId);
    if (!cells) return;
    cells.state.textContent = stateWords(job);
    cells.progress.value = job.progress;
    cells.progress.textContent = percent(job.progress);
    cells.finished.textContent = dateTime(job.finishedAt);
    cells.error.textContent = job.error;
    const actions: HTMLElement[] = [];
    if (job.state === JobState.SUCCEEDED) {
      actions.push(
        h(
          "button",
          { type: "button", class: "secondary small", onclick: () => void showResult(job.jobId) },
          "Show result",
        ),
      );
    } else if (!FINISHED.has(job.state)) {
      actions.push(
        h("button", { type: "button", class: "secondary small", onclick: () => void cancel(job.jobId) }, "Cancel"),
      );
    }
    replaceChildren(cells.actions, actions);
  }

  /** Follows a job over WatchJob until it finishes or the page is left. */
  function watch(jobId: string): void {
    if (watchers.has(jobId)) return;
    const controller = new AbortController();
    watchers.set(jobId, controller);
    void (async () => {
      try {
        for await (const job of api.jobs.watchJob({ jobId }, { signal: controller.signal })) {
          update(job);
          if (FINISHED.has(job.state)) {
            if (job.state === JobState.SUCCEEDED && showWhenDone.delete(jobId)) await showResult(jobId);
            break;
          }
        }
      } catch (failure) {
        if (!isAbort(failure)) error.show(failure, `Stopped following job ${jobId}.`);
      } finally {
        watchers.delete(jobId);
      }
    })();
  }

  async function cancel(jobId: string): Promise<void> {
    try {
      update(await api.jobs.cancelJob({ jobId }, { signal }));
    } catch (failure) {
      error.show(failure, `Could not cancel job ${jobId}.`);
    }
  }

  async function showResult(jobId: string): Promise<void> {
    try {
      const job = await api.jobs.getJob({ jobId, includeResult: true }, { signal });
      const inputs = submittedInputs.get(jobId) ?? [];
      const heading = h("h2", { id: "job-result-heading", tabindex: "-1" }, `Result of job ${jobId}`);
      replaceChildren(resultArea, heading, resultBody(job, inputs));
      resultArea.hidden = false;
    } catch (failure) {
      error.show(failure, `Could not fetch the result of job ${jobId}.`);
    }
  }

  function resultBody(job: Job, inputs: Blob[]): (Node | string)[] {
    const result = job.result;
    if (result.case === "stylization") {
      const { image, size, model } = result.value;
      if (!image) return ["The job has no result image."];
      const afterUrl = objectUrls.of(bytesBlob(image.data));
      const facts = h("p", { class: "muted" }, `${size?.width ?? "?"} × ${size?.height ?? "?"} px, by ${model}.`);
      const download = h("a", { href: afterUrl, download: `stylized-${job.jobId}` }, "Download the result");
      if (inputs[0]) return [beforeAfter(objectUrls.of(inputs[0]), afterUrl), facts, download];
      return [h("img", { src: afterUrl, alt: "The stylized result", class: "result-image" }), facts, download];
    }
    if (result.case === "detection") {
      const objectResults = result.value.objects?.results ?? [];
      const faceResults = result.value.faces?.results ?? [];
      const count = Math.max(objectResults.length, faceResults.length);
      return Array.from({ length: count }, (_, index) => {
        const found: { box: BoundingBox | undefined; words: string; tone: OverlayBox["tone"] }[] = [
          ...(objectResults[index]?.objects ?? []).map((o) => ({
            box: o.box,
            words: `${o.className} ${decimal(o.score, 2)}`,
            tone: "candidate" as const,
          })),
          ...(faceResults[index]?.faces ?? []).map((f) => ({
            box: f.box,
            words: `face ${decimal(f.score, 2)}`,
            tone: "match" as const,
          })),
        ];
        const name = objectResults[index]?.imageName || faceResults[index]?.imageName || `image ${index + 1}`;
        const boxes = found.flatMap(({ box, words, tone }) => (box ? [{ box, label: words, tone }] : []));
        return h(
          "figure",
          { class: "detection" },
          inputs[index]
            ? annotatedImage(objectUrls.of(inputs[index]), `${name} with its detections outlined`, boxes)
            : null,
          h("figcaption", {}, `${name}: ${found.length ? found.map((f) => f.words).join(", ") : "nothing found"}`),
        );
      });
    }
    return ["The job has no result (it may have expired)."];
  }

  root.append(
    pageHeading("Jobs", h("button", { type: "button", class: "secondary", onclick: () => void load() }, "Refresh")),
    error.element,
    tableArea,
    h("nav", { class: "pager", "aria-label": "Job pages" }, newestButton, olderButton),
    resultArea,
    h("div", { class: "two-columns" }, stylizeForm, detectForm),
  );
  olderButton.addEventListener("click", () => {
    pageIndex += 1;
    void load();
  });
  newestButton.addEventListener("click", () => {
    pageIndex = 0;
    void load();
  });

  void (async () => {
    try {
      const { styles } = await api.jobs.listStyles({}, { signal });
      const named = styles.filter((style: Style) => style.kind !== STYLE_IMAGE_KIND);
      replaceChildren(
        styleSelect,
        named.map((style) => h("option", { value: style.name }, style.name)),
      );
    } catch (failure) {
      stylizeError.show(failure, "Could not list the styles.");
    }
  })();
  void load();
}
