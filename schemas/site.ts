import Type, { type Static } from "typebox";
import { Cidr, IPv4, Name, Params, documentSchema } from "./common.js";

export const Subnet = Type.Object(
  {
    name: Name,
    cidr: Cidr,
    gateway: Type.Optional(IPv4),
    dns: Type.Optional(Type.Array(IPv4)),
    domain: Type.Optional(Type.String()),
    dhcp: Type.Optional(
      Type.Union([Type.Literal("serve"), Type.Literal("proxy"), Type.Literal("off")], {
        description: "serve: gitrack hands out addresses; proxy: another server does, gitrack only answers PXE clients; off",
      }),
    ),
    relayed: Type.Optional(
      Type.Boolean({ description: "reached through DHCP relays (chosen by giaddr); relayed requests are answered only for relayed subnets" }),
    ),
    relays: Type.Optional(
      Type.Array(IPv4, { minItems: 1, maxItems: 64, description: "the relays' addresses (giaddr) on this subnet; when given, only these are answered" }),
    ),
    range: Type.Optional(
      Type.Object({ start: IPv4, end: IPv4 }, { additionalProperties: false, description: "dynamic range for unknown machines" }),
    ),
    leaseSeconds: Type.Optional(Type.Integer({ minimum: 60, maximum: 31_536_000 })),
  },
  { additionalProperties: false },
);

export const SiteSpec = Type.Object(
  {
    params: Type.Optional(Params),
    subnets: Type.Array(Subnet, { minItems: 1 }),
    boot: Type.Object(
      {
        advertise: IPv4,
        unknownBootEnv: Type.Optional(Name),
        httpPort: Type.Optional(Type.Integer({ minimum: 1, maximum: 65535 })),
      },
      { additionalProperties: false },
    ),
    rollout: Type.Optional(
      Type.Object(
        {
          maxUnavailable: Type.Optional(
            Type.Union([Type.Integer({ minimum: 1 }), Type.String({ pattern: "^(100|[1-9]?[0-9])%$" })]),
          ),
          failureThreshold: Type.Optional(Type.Integer({ minimum: 1 })),
        },
        { additionalProperties: false },
      ),
    ),
  },
  { additionalProperties: false },
);

export const SiteDocument = documentSchema("Site", SiteSpec, "A site: its networks, boot services and rollout policy.");
export type SiteDoc = Static<typeof SiteDocument>;
export type SubnetSpec = Static<typeof Subnet>;
