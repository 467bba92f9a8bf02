/**
 * The dashboard's numbers, each with why it is that number.
 */

/** 10 min: long enough to copy a printed link into a browser, short enough that a link left
 * in a terminal's scrollback is dead by the time anyone else reads it. */
export const LOGIN_CODE_TTL_MS = 10 * 60_000;
/** 8 outstanding codes: one printed at start plus a few `dashboardurl` calls; minting more
 * drops the oldest, so the table never grows. */
export const MAX_LOGIN_CODES = 8;
/** 12 h: a working day with the tab open; after that the operator mints a new link. */
export const SESSION_TTL_MS = 12 * 60 * 60_000;
/** 16 sessions: a few browsers per operator; a new login beyond that ends the oldest. */
export const MAX_SESSIONS = 16;
/** 16 random bytes = 128 bits per login code: unguessable within its 10 minutes. */
export const LOGIN_CODE_BYTES = 16;
/** 32 random bytes = 256 bits per session token, as the RPC cookie. */
export const SESSION_TOKEN_BYTES = 32;
/** 1 KiB caps a login request body: it only carries a 22-character code. */
export const MAX_LOGIN_BODY_BYTES = 1024;

/** One height sample every 2 s ... */
export const HISTORY_SAMPLE_INTERVAL_MS = 2_000;
/** ... for 10 minutes (300 samples, about 12 KiB of JSON per poll): "the last minutes". */
export const HISTORY_SAMPLES = 300;
/** The last 10 blocks: a screenful, and 10 index reads per poll. */
export const RECENT_BLOCKS = 10;
/** Row caps per table: one poll's answer stays small even with a large registry. */
export const MAX_PEER_ROWS = 256;
export const MAX_MASTERNODE_ROWS = 500;
export const MAX_DEVNET_ROWS = 200;

/** Paths on the RPC listener. GET / is the page; the rest live under /dashboard/. */
export const PAGE_PATH = "/";
export const LOGIN_PATH = "/dashboard/login";
export const STATE_PATH = "/dashboard/api/state";
/** The node's event stream (server-sent events), behind the same session check as the state. */
export const EVENTS_PATH = "/dashboard/api/events";
/** The session cookie is sent only to this path: never to POST / (JSON-RPC). */
export const SESSION_COOKIE_PATH = "/dashboard/api";
/** Cookies are scoped by host, not port: the port in the name keeps two nodes on one host apart. */
export const SESSION_COOKIE_PREFIX = "timed_dashboard_";
