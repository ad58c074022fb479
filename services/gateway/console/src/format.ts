// Turning message fields into words for the pages.
import { timestampDate, type Timestamp } from "@bufbuild/protobuf/wkt";

export function dateTime(timestamp: Timestamp | undefined): string {
  if (!timestamp || (timestamp.seconds === 0n && timestamp.nanos === 0)) return "—";
  return timestampDate(timestamp).toLocaleString();
}

export function decimal(value: number | undefined, digits = 3): string {
  return value === undefined || Number.isNaN(value) ? "—" : value.toFixed(digits);
}

export function percent(value: number | undefined): string {
  return value === undefined ? "—" : `${(value * 100).toFixed(1)}%`;
}

export function plural(count: number | bigint, one: string, many = `${one}s`): string {
  return `${count} ${BigInt(count) === 1n ? one : many}`;
}

/** "PHOTO_NO_FACE" -> "no face": an enum value's name, minus a given prefix, in lower-case words. */
export function enumWords(name: string | undefined, prefix = ""): string {
  if (!name) return "unknown";
  return name
    .replace(new RegExp(`^${prefix}`), "")
    .replaceAll("_", " ")
    .toLowerCase();
}

/** "Barack Obama (obama)", or the bare ID for a subject without a display name. */
export function subjectName(displayName: string, subjectId: string): string {
  return displayName ? `${displayName} (${subjectId})` : subjectId;
}
