import Type, { type Static } from "typebox";
import { Params, Sha256, documentSchema } from "./common.js";

export const Artifact = Type.Object(
  {
    url: Type.String({ pattern: "^(file:///|https?://)", description: "file:// (absolute path on the daemon's host) or http(s)://" }),
    sha256: Sha256,
  },
  { additionalProperties: false },
);

export const BootFile = Type.Object(
  {
    name: Type.String({ pattern: "^[A-Za-z0-9][A-Za-z0-9._-]*$" }),
    template: Type.String(),
    contentType: Type.Optional(Type.String()),
  },
  { additionalProperties: false },
);

export const BootEnvSpec = Type.Object(
  {
    purpose: Type.Optional(
      Type.Union([Type.Literal("install"), Type.Literal("discovery"), Type.Literal("local"), Type.Literal("live")]),
    ),
    kernel: Type.Optional(Artifact),
    initrds: Type.Optional(Type.Array(Artifact)),
    cmdline: Type.Optional(Type.String({ description: "kernel command line (a template)" })),
    script: Type.Optional(Type.String({ description: "a custom iPXE script (a template) replacing the generated one" })),
    files: Type.Optional(Type.Array(BootFile)),
    params: Type.Optional(Params),
  },
  { additionalProperties: false },
);

export const BootEnvDocument = documentSchema("BootEnv", BootEnvSpec, "What a machine boots: kernel, initrds, command line and rendered files.");
export type BootEnvDoc = Static<typeof BootEnvDocument>;
export type ArtifactSpec = Static<typeof Artifact>;
