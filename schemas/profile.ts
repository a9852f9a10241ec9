import Type, { type Static } from "typebox";
import { Name, Params, documentSchema } from "./common.js";

export const ProfileSpec = Type.Object(
  {
    params: Type.Optional(Params),
    bootEnv: Type.Optional(Name),
  },
  { additionalProperties: false },
);

export const ProfileDocument = documentSchema("Profile", ProfileSpec, "A named bundle of params, optionally with a bootEnv.");
export type ProfileDoc = Static<typeof ProfileDocument>;
