// Fails when a .tf file is not as `terraform fmt` would write it: hclwrite's
// Format (the formatter terraform fmt runs), compiled to WebAssembly in
// @cdktf/hcl-tools. Usage: node tests/infra/hcl_format_check.js FILE...
// (NODE_PATH: where @cdktf/hcl-tools is installed).
"use strict";
const fs = require("fs");
const { format } = require("@cdktf/hcl-tools");

(async () => {
  const unformatted = [];
  for (const path of process.argv.slice(2)) {
    const source = fs.readFileSync(path, "utf8");
    if ((await format(source)) !== source) unformatted.push(path);
  }
  for (const path of unformatted) console.error(`not formatted as terraform fmt would: ${path}`);
  console.log(`${process.argv.length - 2 - unformatted.length} of ${process.argv.length - 2} files formatted`);
  process.exit(unformatted.length ? 1 : 0);
})();
