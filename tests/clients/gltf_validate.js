// Run by node, not by pytest: validate each GLB given on the command line with the Khronos glTF Validator
// (npm package gltf-validator, found through NODE_PATH) and print one JSON report per line, prefixed
// "RECON_GLTF_JSON ". Usage: node gltf_validate.js FILE.glb ...
"use strict";
const fs = require("fs");
const validator = require("gltf-validator");

async function main() {
    for (const path of process.argv.slice(2)) {
        const bytes = new Uint8Array(fs.readFileSync(path));
        const report = await validator.validateBytes(bytes, {
            uri: path,
            maxIssues: 0,
            externalResourceFunction: (uri) => Promise.reject(new Error(`external resource ${uri}`)),
        });
        console.log("RECON_GLTF_JSON " + JSON.stringify({ path, version: validator.version(), report }));
    }
}

main().catch((err) => {
    console.error(err);
    process.exit(1);
});
