import { CodedError } from "../util/codedError.js";

export type DashboardErrorCode = "ASSETS_MISSING" | "NOT_LISTENING";

export class DashboardError extends CodedError<DashboardErrorCode> {}
