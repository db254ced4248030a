"""A small shop: users, products, orders and order items."""
