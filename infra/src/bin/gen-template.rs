//! Writes `infra/template.yaml`, `docs/openapi.json` and `docs/asyncapi.json` from the code.

fn main() -> std::io::Result<()> {
    let infra = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let template = infra.join("template.yaml");
    std::fs::write(&template, livestream_infra::template_yaml())?;
    println!("wrote {}", template.display());
    let openapi = infra.join("../docs/openapi.json");
    let document = serde_json::to_string_pretty(&livestream::openapi::document())?;
    std::fs::write(&openapi, document + "\n")?;
    println!("wrote {}", openapi.display());
    let asyncapi = infra.join("../docs/asyncapi.json");
    let document = serde_json::to_string_pretty(&livestream::asyncapi::document())?;
    std::fs::write(&asyncapi, document + "\n")?;
    println!("wrote {}", asyncapi.display());
    Ok(())
}
