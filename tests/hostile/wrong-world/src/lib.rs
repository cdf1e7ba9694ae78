//! Exports a world of its own instead of `runbook:host/playbook`: the host must refuse to load
//! it with a message naming the playbook world, and keep serving.

wit_bindgen::generate!({
    inline: "
        package rb6:wrong;
        world other {
            export hello: func() -> string;
        }
    ",
});

struct Other;

impl Guest for Other {
    fn hello() -> String {
        "not a playbook".into()
    }
}

export!(Other);
