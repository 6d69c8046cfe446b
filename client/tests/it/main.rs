//! The client as a player meets it, under Xvfb with software rendering: joined to a
//! local cluster where other players walk, it draws a real frame.

mod screenshot;
