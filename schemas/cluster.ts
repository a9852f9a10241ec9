import Type, { type Static } from "typebox";
import { Labels, Name, Params, documentSchema } from "./common.js";

export const ClusterRole = Type.Object(
  {
    machines: Type.Optional(Type.Array(Name)),
    selector: Type.Optional(
      Type.Object({ matchLabels: Labels }, { additionalProperties: false, description: "machines of the site whose labels match" }),
    ),
    count: Type.Integer({ minimum: 0 }),
    profiles: Type.Optional(Type.Array(Name)),
  },
  { additionalProperties: false },
);

export const ClusterSpec = Type.Object(
  {
    site: Name,
    roles: Type.Record(Name, ClusterRole),
    params: Type.Optional(Params),
  },
  { additionalProperties: false },
);

export const ClusterDocument = documentSchema("Cluster", ClusterSpec, "Machines composed into a system, by role.");
export type ClusterDoc = Static<typeof ClusterDocument>;
export type ClusterRoleSpec = Static<typeof ClusterRole>;
