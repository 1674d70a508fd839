#[cfg(test)]
mod exp {
    use serde::Deserialize;
    use serde::de::IntoDeserializer;
    use toml::de::{DeTable, DeValue};

    #[derive(Deserialize, Debug)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct L { #[serde(default)] zone: String, address: std::net::SocketAddr, port: Option<u32> }

    fn dump(v: &toml::Spanned<DeValue>, ind: usize, src: &str) {
        match v.get_ref() {
            DeValue::Table(t) => for (k, v) in t.iter() {
                println!("{:ind$}key {:?} kspan {:?} vspan {:?} {:?}", "", k.get_ref(), k.span(), v.span(), &src[v.span()].chars().take(30).collect::<String>(), ind=ind);
                dump(v, ind+2, src);
            },
            DeValue::Array(a) => for (i, v) in a.iter().enumerate() {
                println!("{:ind$}[{i}] vspan {:?} {:?}", "", v.span(), &src[v.span()].chars().take(30).collect::<String>(), ind=ind);
                dump(v, ind+2, src);
            },
            _ => {}
        }
    }

    #[test]
    fn spans() {
        let src = "[general]\nlog = 1\n\n[[listen]]\naddress = \"1.2.3.4:5\"\n\n[[listen]]\nzone = \"x\"\nbogus = 3\naddress = \"1.2.3.4:5\"\n[[listen]]\nzone = 5\n[[listen]]\naddress = \"nope\"\nport = -1\n[[listen]]\naddress = \"1.2.3.4:5\"\nport = 1.5\n[a.b]\nc = [1, 2,\n 3]\nd = {x = 1}\n";
        let (root, errs) = DeTable::parse_recoverable(src);
        println!("errs {errs:?} root span {:?}", root.span());
        let rootv = toml::Spanned::new(root.span(), DeValue::Table(root.get_ref().clone()));
        dump(&rootv, 0, src);
        let listen = root.get_ref().get("listen").unwrap();
        if let DeValue::Array(a) = listen.get_ref() {
            for v in a.iter() {
                let r = L::deserialize(v.clone().into_deserializer());
                match r { Ok(l) => println!("ok {l:?}"), Err(e) => println!("err msg={:?} span={:?}", e.message(), e.span()) }
            }
        }
        let bad = "a = 1\nb = \n[x]\ny = 'unterminated\nz = 3\n[x]\n";
        let (_r, errs) = DeTable::parse_recoverable(bad);
        for e in errs { println!("syntax {:?} {:?}", e.message(), e.span()); }
        panic!();
    }
}
