// The version sara reports (`sara version`, `sara -v`).

/** Version of this server; the protocol version is separate (VSN). */
export const VERSION = "0.1.0";
