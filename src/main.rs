fn main() {
    println!("ringside");
}
