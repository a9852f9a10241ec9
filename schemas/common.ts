// Building blocks shared by every kind: the document envelope and the value
// formats (names, MACs, addresses, digests) that validation points at.
import Type, { type TSchema } from "typebox";

import { API_VERSION } from "./kinds.js";

export { API_VERSION };

/** A DNS label: what machine, site and profile names must be. */
export const Name = Type.String({
  pattern: "^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$",
  description: "a DNS label: lower-case letters, digits and '-', at most 63 characters",
});

export const Mac = Type.String({
  pattern: "^[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}$",
  description: "a MAC address, six colon-separated hex pairs (quote it in YAML)",
});

export const IPv4 = Type.String({ format: "ipv4", description: "an IPv4 address" });

export const Cidr = Type.String({
  pattern: "^(\\d{1,3}\\.){3}\\d{1,3}/(\\d|[12]\\d|3[0-2])$",
  description: "an IPv4 network in CIDR notation, e.g. 10.0.0.0/24",
});

export const Sha256 = Type.String({
  pattern: "^[0-9a-f]{64}$",
  description: "a sha256 digest: 64 lower-case hex digits",
});

export const Params = Type.Record(Type.String({ pattern: "^[A-Za-z_][A-Za-z0-9_]*$" }), Type.Unknown(), {
  description: "named values templates read as params.NAME",
});

export const Labels = Type.Record(Type.String(), Type.String());

export const Metadata = Type.Object(
  {
    name: Name,
    labels: Type.Optional(Labels),
    annotations: Type.Optional(Labels),
  },
  { additionalProperties: false },
);

/** The envelope every document shares, around a kind's own spec. */
export function documentSchema<S extends TSchema, K extends string>(kind: K, spec: S, description: string) {
  return Type.Object(
    {
      apiVersion: Type.Literal(API_VERSION),
      kind: Type.Literal(kind),
      metadata: Metadata,
      spec,
    },
    {
      additionalProperties: false,
      $id: `https://gitrack.dev/schemas/${kind.toLowerCase()}.schema.json`,
      title: kind,
      description,
    },
  );
}
