/** The wire protocol's version, kept apart from the package version (bump on any incompatible change). */
export const PROTOCOL_VERSION = 1;
