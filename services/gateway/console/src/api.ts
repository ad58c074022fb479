// The Connect clients of the services the gateway forwards to, and the API key they send.
import { Code, ConnectError, createClient, type Client, type Interceptor } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-web";
import { DetectorService } from "./gen/argus/detector/v1/detector_pb";
import { FaceDatabaseService } from "./gen/argus/facedb/v1/facedb_pb";
import { GatewayService } from "./gen/argus/gateway/v1/gateway_pb";
import { JobsService } from "./gen/argus/jobs/v1/jobs_pb";

const KEY_STORAGE = "argus.console.apiKey";

// sessionStorage, not localStorage: the key is gone when the tab is closed.
export function storedKey(): string | null {
  return sessionStorage.getItem(KEY_STORAGE);
}

export function storeKey(key: string): void {
  sessionStorage.setItem(KEY_STORAGE, key);
}

export function forgetKey(): void {
  sessionStorage.removeItem(KEY_STORAGE);
}

function withKey(keyOf: () => string | null): Interceptor {
  return (next) => async (request) => {
    const key = keyOf();
    if (key) request.header.set("Authorization", `Bearer ${key}`);
    return next(request);
  };
}

function transportFor(keyOf: () => string | null) {
  return createConnectTransport({
    baseUrl: window.location.origin,
    // Binary protobuf: photos travel as raw bytes instead of base64 JSON.
    useBinaryFormat: true,
    interceptors: [withKey(keyOf)],
  });
}

export interface Clients {
  faces: Client<typeof FaceDatabaseService>;
  detector: Client<typeof DetectorService>;
  jobs: Client<typeof JobsService>;
  gateway: Client<typeof GatewayService>;
}

function clientsFor(keyOf: () => string | null): Clients {
  const transport = transportFor(keyOf);
  return {
    faces: createClient(FaceDatabaseService, transport),
    detector: createClient(DetectorService, transport),
    jobs: createClient(JobsService, transport),
    gateway: createClient(GatewayService, transport),
  };
}

/** The clients every page uses: they send the signed-in key. */
export const api: Clients = clientsFor(storedKey);

/** Clients that send `key`, to try a key before keeping it. */
export function clientsWithKey(key: string): Clients {
  return clientsFor(() => key);
}

export function errorCode(error: unknown): Code | undefined {
  return error instanceof ConnectError ? error.code : undefined;
}

export function isAbort(error: unknown): boolean {
  return errorCode(error) === Code.Canceled || (error instanceof DOMException && error.name === "AbortError");
}

const CODE_WORDS: Partial<Record<Code, string>> = {
  [Code.Unauthenticated]: "Not signed in",
  [Code.PermissionDenied]: "Not allowed",
  [Code.InvalidArgument]: "Refused",
  [Code.NotFound]: "Not found",
  [Code.AlreadyExists]: "Already exists",
  [Code.ResourceExhausted]: "Too busy or too large",
  [Code.FailedPrecondition]: "Not possible now",
  [Code.Unavailable]: "Service unavailable",
  [Code.DeadlineExceeded]: "Timed out",
};

/** The service's own message, without the code. */
export function errorMessage(error: unknown): string {
  return ConnectError.from(error).rawMessage;
}

/** What went wrong, in words: the kind of error and the service's own message. */
export function describeError(error: unknown): string {
  const connectError = ConnectError.from(error);
  const words = CODE_WORDS[connectError.code] ?? "Error";
  return `${words}: ${connectError.rawMessage || Code[connectError.code]}`;
}

export { Code };
