import Type, { type Static } from "typebox";
import { IPv4, Mac, Name, Params, documentSchema } from "./common.js";

const SecretRef = Type.Object(
  { secret: Name, key: Type.String({ minLength: 1 }) },
  { additionalProperties: false, description: "a value held in a Secret document, never inline" },
);

const PowerVariants = Type.Union(
  [
    Type.Object(
      { driver: Type.Literal("manual"), note: Type.Optional(Type.String()) },
      { additionalProperties: false },
    ),
    Type.Object(
      {
        driver: Type.Literal("qemu"),
        bridge: Type.String({ minLength: 1, maxLength: 15 }),
        memoryMB: Type.Optional(Type.Integer({ minimum: 64, maximum: 65536 })),
        nic: Type.Optional(Type.Union([Type.Literal("virtio"), Type.Literal("e1000")])),
        accel: Type.Optional(Type.Union([Type.Literal("auto"), Type.Literal("kvm"), Type.Literal("tcg")])),
      },
      { additionalProperties: false },
    ),
    Type.Object(
      {
        driver: Type.Literal("ipmi"),
        address: Type.String({ minLength: 1 }),
        username: Type.Optional(Type.String()),
        credentialsRef: SecretRef,
      },
      { additionalProperties: false },
    ),
    Type.Object(
      {
        driver: Type.Literal("redfish"),
        address: Type.String({ minLength: 1 }),
        systemId: Type.Optional(Type.String()),
        credentialsRef: SecretRef,
      },
      { additionalProperties: false },
    ),
  ],
);

/**
 * A tagged union on `driver` (ajv's discriminator): a mistake in one driver's
 * fields is reported against that driver alone, not against every variant.
 */
export const PowerSpec = Type.Unsafe<Static<typeof PowerVariants>>({
  type: "object",
  description: "how gitrack powers the machine: driver plus that driver's fields",
  discriminator: { propertyName: "driver" },
  required: ["driver"],
  properties: { driver: { type: "string" } },
  oneOf: PowerVariants.anyOf,
});

export const Interface = Type.Object(
  {
    name: Type.Optional(Type.String()),
    mac: Mac,
    ip: Type.Optional(IPv4),
  },
  { additionalProperties: false },
);

export const MachineSpec = Type.Object(
  {
    site: Name,
    interfaces: Type.Array(Interface, { minItems: 1 }),
    profiles: Type.Optional(Type.Array(Name)),
    params: Type.Optional(Params),
    bootEnv: Type.Optional(Name),
    intent: Type.Optional(
      Type.Union(
        [Type.Literal("provisioned"), Type.Literal("reprovision"), Type.Literal("maintenance"), Type.Literal("decommissioned")],
        { description: "provisioned: install once then boot from disk; reprovision: wipe and rebuild; maintenance: hands off" },
      ),
    ),
    generation: Type.Optional(Type.Integer({ minimum: 0, description: "raising it means wipe and rebuild" })),
    power: Type.Optional(PowerSpec),
    serial: Type.Optional(Type.String()),
    uuid: Type.Optional(Type.String()),
  },
  { additionalProperties: false },
);

export const MachineDocument = documentSchema("Machine", MachineSpec, "One physical (or virtual) machine.");
export type MachineDoc = Static<typeof MachineDocument>;
export type PowerSpecT = Static<typeof PowerSpec>;
