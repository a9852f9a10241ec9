import { describe, expect, it } from "vitest";
import {
  TemplateError,
  parseTemplate,
  renderTemplate,
  templateParamRefs,
  templateRefs,
  templateUnknownRefs,
} from "../../renderers/engine.js";
import { sampleContext } from "./sample-context.js";

const at = (source: string, line = 10, col = 5) => ({ source, file: "bootenvs/x.yaml", line, col });

function renderError(source: string, line = 10, col = 5): TemplateError {
  try {
    renderTemplate(at(source, line, col), sampleContext());
  } catch (err) {
    expect(err).toBeInstanceOf(TemplateError);
    return err as TemplateError;
  }
  throw new Error(`expected ${JSON.stringify(source)} to fail`);
}

describe("renderTemplate", () => {
  it("renders machine, params, site and urls fields", () => {
    const out = renderTemplate(
      at("{{ machine.hostname }} {{ params.ntp.server }} {{ site.subnet.netmask }} {{ urls.files }}ks.cfg"),
      sampleContext(),
    );
    expect(out).toBe("r1-n01.lab.example 10.77.0.1 255.255.255.0 http://10.77.0.1:8080/boot/tok123/files/ks.cfg");
  });

  it("reports an undefined variable at its line and column in the YAML file", () => {
    const err = renderError("line one\n  {{ params.nope }}", 10, 5);
    expect(err.file).toBe("bootenvs/x.yaml");
    expect(err.line).toBe(11);
    expect(err.col).toBe(10); // "  {{ " puts the variable in template column 6
    expect(err.reason).toMatch(/undefined variable: params\.nope/);
    expect(err.message).toMatch(/^bootenvs\/x\.yaml:11:10: /);
  });

  it("reports an unknown filter instead of passing the value through", () => {
    expect(renderError("{{ machine.name | frobnicate }}").reason).toMatch(/frobnicate/);
  });

  it("reports a syntax error positioned in the file", () => {
    const err = renderError("ok\nok\n{% if machine.known %}never closed", 4, 3);
    expect(err.line).toBe(6);
    expect(err.reason).toMatch(/not closed|endif/i);
  });

  it("cannot reach a prototype through machine.constructor", () => {
    expect(renderError("{{ machine.constructor }}").reason).toMatch(/undefined variable/);
  });

  it("cannot reach a prototype through params.__proto__", () => {
    expect(renderError("{{ params.__proto__ }}").reason).toMatch(/undefined variable/);
  });

  it("cannot call the Function constructor through a chain of lookups", () => {
    expect(() =>
      renderTemplate(at('{{ machine.name.constructor.constructor("return process")() }}'), sampleContext()),
    ).toThrow(TemplateError);
  });

  it("refuses include, render and layout when the template is parsed, at the tag", () => {
    for (const tag of ["include '/etc/passwd'", "render 'x'", "layout 'base'"]) {
      let err: unknown;
      try {
        parseTemplate(at(`line one\n  {% ${tag} %}body`));
      } catch (e) {
        err = e;
      }
      expect(err, tag).toBeInstanceOf(TemplateError);
      expect((err as TemplateError).reason).toMatch(/is not available: templates cannot read files/);
      expect((err as TemplateError).line).toBe(11);
    }
  });

  it("stops a range loop of 10^7 by its memory bound, before the range is built", () => {
    expect(renderError("{% for i in (1..10000000) %}{% endfor %}").reason).toMatch(/memory alloc limit/);
  });

  it("stops a loop of 10^8 iterations", () => {
    expect(renderError("{% for i in (1..100000000) %}x{% endfor %}").reason).toMatch(/limit/i);
  });

  it("stops a string that doubles itself into gigabytes", () => {
    const src =
      '{% assign s = "xxxxxxxxxxxxxxxx" %}{% for i in (1..40) %}{% assign s = s | append: s %}{% endfor %}{{ s | size }}';
    expect(renderError(src).reason).toMatch(/limit/i);
  });

  it("lets `default` supply a value for a param nobody set", () => {
    expect(renderTemplate(at('{{ params.mirror | default: "deb.debian.org" }}'), sampleContext())).toBe(
      "deb.debian.org",
    );
  });

  it("treats an unset param in an if condition as false", () => {
    expect(renderTemplate(at("{% if params.proxy %}P{% else %}none{% endif %}"), sampleContext())).toBe("none");
  });

  it("quotes a value for a shell with the shellquote filter", () => {
    const ctx = sampleContext({ params: { pw: "it's $HOME" } });
    expect(renderTemplate(at("echo {{ params.pw | shellquote }}"), ctx)).toBe(`echo 'it'\\''s $HOME'`);
  });

  it("gives the same output when the same source is rendered for two machines", () => {
    const a = sampleContext();
    const b = sampleContext({ machine: { ...a.machine, name: "r1-n02" } });
    const tpl = at("{{ machine.name }}");
    expect(renderTemplate(tpl, a)).toBe("r1-n01");
    expect(renderTemplate(tpl, b)).toBe("r1-n02");
  });
});

describe("templateParamRefs", () => {
  it("names the first segment after params, positioned in the file", () => {
    const refs = templateParamRefs(at("x\n  {{ params.ntp.server }}", 20, 7));
    expect(refs).toEqual([{ param: "ntp", path: "params.ntp.server", line: 21, col: 12, optional: false }]);
  });

  it("counts a use filtered by default as optional", () => {
    const [ref] = templateParamRefs(at('{{ params.mirror | default: "m" }}'));
    expect(ref).toMatchObject({ param: "mirror", optional: true });
  });

  it("does not count a default filter's argument as optional", () => {
    const refs = templateParamRefs(at("{{ params.a | default: params.b }}"));
    expect(refs.map((r) => [r.param, r.optional])).toEqual([
      ["a", true],
      ["b", false],
    ]);
  });

  it("counts a condition and the uses it guards as optional", () => {
    const refs = templateParamRefs(at("{% if params.ntp %}{{ params.ntp.server }}{% endif %}{{ params.ntp.pool }}"));
    expect(refs.map((r) => [r.path, r.optional])).toEqual([
      ["params.ntp", true],
      ["params.ntp.server", true],
      ["params.ntp.pool", false],
    ]);
  });

  it("does not count a use as guarded by a condition joined with or", () => {
    const refs = templateParamRefs(at("{% if params.a or params.b %}{{ params.a }}{% endif %}"));
    expect(refs.find((r) => r.path === "params.a" && r.col > 30)?.optional).toBe(false);
  });

  it("ignores names the template assigns itself", () => {
    expect(templateRefs(at("{% assign x = params.y %}{{ x }}")).map((r) => r.path)).toEqual(["params.y"]);
  });

  it("sees uses inside loops and case branches", () => {
    const refs = templateParamRefs(
      at("{% for d in params.disks %}{{ d }}{% endfor %}{% case params.kind %}{% when 'a' %}{{ params.z }}{% endcase %}"),
    );
    expect(refs.map((r) => r.param)).toEqual(["disks", "kind", "z"]);
  });
});

describe("templateUnknownRefs", () => {
  it("reports a top-level name outside the render context", () => {
    const refs = templateUnknownRefs(at("{{ machine.name }} {{ foo }}"));
    expect(refs.map((r) => r.root)).toEqual(["foo"]);
  });
});
