//! A playbook that also imports `rb6:foreign/raw-socket`, an interface no runbook host provides
//! (a raw network escape hatch): linking must fail and name the missing import.

wit_bindgen::generate!({
    path: "../../../wit",
    inline: "
        package rb6:foreign;
        interface raw-socket {
            connect: func(address: string) -> u32;
        }
        world foreign {
            include runbook:host/playbook@0.4.0;
            import raw-socket;
        }
    ",
    world: "rb6:foreign/foreign",
    generate_all,
});

use runbook::host::types::{Capability, Status};

struct Foreign;

impl Guest for Foreign {
    fn describe() -> Description {
        Description {
            name: "foreign-import".into(),
            summary: "imports an interface the host does not provide".into(),
            version: "0.1.0".into(),
            params: Vec::new(),
            capabilities: vec![Capability::Http],
        }
    }

    fn run(_incident: Incident) -> Result<Outcome, Error> {
        // Calling the import keeps it in the component.
        let fd = rb6::foreign::raw_socket::connect("169.254.169.254:80");
        Ok(Outcome {
            status: Status::Resolved,
            summary: format!("ESCAPED: raw socket {fd}"),
            actions: Vec::new(),
        })
    }
}

export!(Foreign);
