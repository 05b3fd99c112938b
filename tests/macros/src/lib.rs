//! Test attributes for the integration suite, so that one test binary runs
//! each test on every database instead of compiling the suite twice.
//!
//! `#[both] async fn name() { … }` keeps `name` as it is and adds a module
//! `name` with two tests, `name::sqlite` and `name::postgres`, each running
//! the function on its own runtime with the suite's helpers set to that
//! database (`helpers::run_on`). `#[postgres_only]` adds `name::postgres` only.
//! Either takes `pgbouncer`, which adds `name::pgbouncer` (PostgreSQL
//! through PgBouncer in transaction mode), and `flavor = "multi_thread",
//! worker_threads = N` as `#[tokio::test]` does.

use proc_macro::TokenStream;
use quote::{format_ident, quote};
use syn::parse::Parser;
use syn::punctuated::Punctuated;
use syn::{parse_macro_input, Expr, ItemFn, Lit, Meta, Token};

/// Runs the test on SQLite and on PostgreSQL.
#[proc_macro_attribute]
pub fn both(args: TokenStream, item: TokenStream) -> TokenStream {
    expand(args, item, &["sqlite", "postgres"])
}

/// Runs the test on PostgreSQL only.
#[proc_macro_attribute]
pub fn postgres_only(args: TokenStream, item: TokenStream) -> TokenStream {
    expand(args, item, &["postgres"])
}

fn expand(args: TokenStream, item: TokenStream, backends: &[&str]) -> TokenStream {
    let function = parse_macro_input!(item as ItemFn);
    let (threads, pooled) = match arguments(args) {
        Ok(parsed) => parsed,
        Err(e) => return e.to_compile_error().into(),
    };
    let mut backends = backends.to_vec();
    if pooled {
        backends.push("pgbouncer");
    }
    if function.sig.asyncness.is_none() {
        return syn::Error::new_spanned(&function.sig, "a backend test is an async fn")
            .to_compile_error()
            .into();
    }
    let name = &function.sig.ident;
    let vis = &function.vis;
    let tests = backends.iter().map(|backend| {
        let test = format_ident!("{backend}");
        let variant = format_ident!(
            "{}",
            match *backend {
                "sqlite" => "Sqlite",
                "postgres" => "Postgres",
                _ => "PgBouncer",
            }
        );
        quote! {
            #[test]
            fn #test() {
                crate::helpers::run_on(crate::helpers::Backend::#variant, #threads, super::#name());
            }
        }
    });
    quote! {
        #function

        #[doc(hidden)]
        #vis mod #name {
            #(#tests)*
        }
    }
    .into()
}

/// The runtime (`None` for a current-thread one, else its worker count)
/// and whether the test also runs through PgBouncer.
fn arguments(args: TokenStream) -> syn::Result<(proc_macro2::TokenStream, bool)> {
    let metas = Punctuated::<Meta, Token![,]>::parse_terminated.parse(args)?;
    let mut multi = false;
    let mut workers: Option<usize> = None;
    let mut pooled = false;
    for meta in &metas {
        match meta {
            Meta::Path(path) if path.is_ident("pgbouncer") => pooled = true,
            Meta::NameValue(pair) => {
                let Expr::Lit(literal) = &pair.value else {
                    return Err(syn::Error::new_spanned(&pair.value, "a literal"));
                };
                let name = pair.path.get_ident().map(|i| i.to_string());
                match (name.as_deref(), &literal.lit) {
                    (Some("flavor"), Lit::Str(s)) if s.value() == "multi_thread" => multi = true,
                    (Some("flavor"), Lit::Str(s)) if s.value() == "current_thread" => multi = false,
                    (Some("worker_threads"), Lit::Int(n)) => workers = Some(n.base10_parse()?),
                    _ => {
                        return Err(syn::Error::new_spanned(
                            pair,
                            "expected flavor or worker_threads",
                        ))
                    }
                }
            }
            other => {
                return Err(syn::Error::new_spanned(
                    other,
                    "expected pgbouncer, flavor or worker_threads",
                ))
            }
        }
    }
    let threads = match (multi, workers) {
        (false, None) => quote!(None),
        (false, Some(_)) => {
            return Err(syn::Error::new_spanned(
                &metas,
                "worker_threads needs flavor = \"multi_thread\"",
            ))
        }
        (true, n) => {
            let n = n.unwrap_or(2);
            quote!(Some(#n))
        }
    };
    Ok((threads, pooled))
}
