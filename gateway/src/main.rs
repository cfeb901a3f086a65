fn main() { filters::hello(); }
