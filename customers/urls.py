from django.urls import path

from . import views

urlpatterns = [
    path("customers", views.CustomerListView.as_view(), name="customer-list"),
    path("customers/bulk", views.CustomerBulkView.as_view(), name="customer-bulk"),
    path("customers/<int:pk>", views.CustomerDetailView.as_view(), name="customer-detail"),
    path("customers/<int:pk>/orders", views.CustomerOrdersView.as_view(), name="customer-orders"),
    path("customers/<int:pk>/activity", views.CustomerActivityView.as_view(), name="customer-activity"),
    path("orders", views.OrderUpsertView.as_view(), name="order-upsert"),
    path("orders/bulk", views.OrderBulkView.as_view(), name="order-bulk"),
    path("orders/<int:pk>", views.OrderDetailView.as_view(), name="order-detail"),
    path("products", views.ProductBulkView.as_view(), name="product-bulk"),
]
