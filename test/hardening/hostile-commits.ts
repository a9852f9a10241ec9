// The hostile-commit corpus of issue 8: files anyone who can open a pull
// request could add to a site repository of test/hardening's site (site
// "lab", subnet 10.79.0.0/24), each with the place (FILE:LINE) and the words
// of the problem it must be rejected with. Each adds files only, so removing
// them makes the repository valid again.

export interface HostileCommit {
  name: string;
  /** Files the commit adds (path → content). */
  files: Record<string, string>;
  /** "FILE:LINE:" the rejection names. */
  at: string;
  message: RegExp;
}

const machineHead = (name: string, bootEnv = "test-install") =>
  [
    "apiVersion: gitrack/v1",
    "kind: Machine",
    "metadata:",
    `  name: ${name}`,
    "spec:",
    "  site: lab",
    "  interfaces:",
    '    - mac: "52:54:00:79:00:66"',
    "      ip: 10.79.0.66",
    `  bootEnv: ${bootEnv}`,
    "  generation: 1",
    "  power: {driver: manual}",
    "  params:",
  ].join("\n") + "\n";

/** Nine anchors, each a list of nine aliases of the one before: 9^9 strings once expanded, in 700 bytes. */
function aliasBomb(): string {
  const keys = ["a", "b", "c", "d", "e", "f", "g", "h", "i"];
  const lines = keys.map((k, i) => (i === 0 ? `    a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]` : `    ${k}: &${k} [${Array(9).fill(`*${keys[i - 1]}`).join(", ")}]`));
  return machineHead("bomb") + lines.join("\n") + "\n";
}

/** A BootEnv whose boot script is `script`, and a machine booting it. */
function templateAttack(name: string, script: string): Record<string, string> {
  const bootEnv = [
    "apiVersion: gitrack/v1",
    "kind: BootEnv",
    "metadata:",
    `  name: ${name}`,
    "spec:",
    "  purpose: install",
    "  script: |",
    "    #!ipxe",
    `    ${script}`,
    "",
  ].join("\n");
  return { [`bootenvs/${name}.yaml`]: bootEnv, [`machines/${name}.yaml`]: machineHead(name, name) + "    x: 1\n" };
}

export function hostileCommits(): HostileCommit[] {
  return [
    { name: "alias bomb", files: { "machines/bomb.yaml": aliasBomb() }, at: "machines/bomb.yaml:", message: /aliases are expanded/ },
    {
      name: "10,000-deep flow nesting",
      files: { "machines/deep.yaml": machineHead("deep") + "    x: " + "[".repeat(10_000) + "]".repeat(10_000) + "\n" },
      at: "machines/deep.yaml:14:",
      message: /nesting deeper than 100 levels/,
    },
    {
      name: "10,000-deep block nesting",
      files: { "machines/deep.yaml": machineHead("deep") + "    x:\n      " + "- ".repeat(10_000) + "1\n" },
      at: "machines/deep.yaml:15:",
      message: /nesting deeper than 100 levels/,
    },
    {
      name: "an alias to its own ancestor",
      files: { "machines/cycle.yaml": machineHead("cycle") + "    x: &x {y: [*x]}\n" },
      at: "machines/cycle.yaml:14:",
      message: /nesting deeper than 100 levels once aliases are followed/,
    },
    {
      name: "an 8 MiB file",
      files: { "machines/huge.yaml": machineHead("huge") + `    x: "${"a".repeat(8 * 1024 * 1024)}"\n` },
      at: "machines/huge.yaml:1:",
      message: /a file may hold at most 4194304/,
    },
    {
      name: "20,001 documents in one file",
      files: { "machines/many.yaml": "---\n{}\n".repeat(20_001) },
      at: "machines/many.yaml:1:",
      message: /a file may hold at most 10000/,
    },
    {
      name: "a template that includes /etc/passwd",
      files: templateAttack("evil-include", "{% include '/etc/passwd' %}"),
      at: "bootenvs/evil-include.yaml:9:",
      message: /templates cannot read files/,
    },
    {
      name: "a template that climbs to the Function constructor",
      files: templateAttack("evil-ctor", '{{ machine.name.constructor.constructor("return process")() }}'),
      at: "bootenvs/evil-ctor.yaml:9:",
      message: /BootEnv evil-ctor script/,
    },
    {
      name: "a template with a loop of 10^7 iterations",
      files: templateAttack("evil-loop", "{% for i in (1..10000000) %}{% endfor %}"),
      at: "bootenvs/evil-loop.yaml:9:",
      message: /limit exceeded \(rendered for machine evil-loop\)/,
    },
    {
      name: "a template whose output doubles into gigabytes",
      files: templateAttack("evil-big", "{% assign s = 'xxxxxxxxxxxxxxxx' %}{% for i in (1..40) %}{% assign s = s | append: s %}{% endfor %}{{ s }}"),
      at: "bootenvs/evil-big.yaml:9:",
      message: /limit exceeded/,
    },
  ];
}
